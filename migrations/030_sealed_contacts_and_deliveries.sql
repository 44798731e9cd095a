-- Three more things kept sealed at rest (issue 14), each as JSON sealed under a data key and bound
-- to its row by the services (FieldCipher), which also read the clear JSON written here:
-- - a person's phone number, under their key (`user:<id>`), so erasing them shreds it. Nobody is
--   looked up by number (a number is compared once opened), so it needs no blind index, and the
--   E.164 check moves to the code that normalises it;
-- - the first response to an Idempotency-Key (a commitment's terms…), under the caller's key;
-- - a webhook delivery's payload and an endpoint's signing secret, under the service's key
--   (`service:webhooks`): endpoints belong to the service, not to a person.
-- SQL has no keys, so existing values become clear JSON here; what is written from now on is
-- sealed (while encryption is on).
alter table phone_numbers drop constraint if exists phone_numbers_phone_check;
alter table phone_numbers
  alter column phone type bytea using convert_to(to_json(phone)::text, 'UTF8');

-- A response stored without a body had none (JSON null): a null body now means "erased" or "in flight".
update http_idempotency set body = 'null'::jsonb where status is not null and body is null;
alter table http_idempotency
  alter column body type bytea using convert_to(body::text, 'UTF8');

alter table webhook_endpoints
  alter column secret type bytea using convert_to(to_json(secret)::text, 'UTF8');
alter table webhook_deliveries
  alter column payload type bytea using convert_to(payload::text, 'UTF8');
