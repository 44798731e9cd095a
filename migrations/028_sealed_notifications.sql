-- A notification's title and body name people and commitments: they are personal data of its
-- recipient, so they are kept sealed at rest under the recipient's data key (user:<recipient_id>),
-- bound to the row (notifications:<id>), as one JSON value {title, body}; erasing the recipient
-- shreds them. Kind, links, ids and ledger index stay plain: the pages, counts and subscriptions
-- filter and order by them. Rows already there become the clear JSON form the field cipher also
-- reads (nothing is lost); the notifier seals every row it writes from now on.
alter table notifications add column sealed bytea;
update notifications
   set sealed = convert_to(json_build_object('title', title, 'body', body)::text, 'UTF8');
alter table notifications alter column sealed set not null;
alter table notifications drop column title, drop column body;
