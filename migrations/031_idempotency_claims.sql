-- Each claim of an Idempotency-Key carries a token of the request that made it, so that request
-- releases or settles only its own claim: a claim whose answer a cut connection lost can be
-- released by its maker once the database is back, and a run whose key a retry took over can no
-- longer delete the retry's claim or its kept response. Claims made before this have none; they
-- are settled as before or taken over once abandoned.
alter table http_idempotency add column claim uuid;
