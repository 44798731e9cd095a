// The backfill of migration 029: addresses written in the clear before it are sealed and indexed
// by the service at start-up (SQL cannot compute the blind index: its key is the service's), a
// page at a time. Each row changes only while it still holds the address read, so processes that
// start together do not seal a row twice.
import type pg from 'pg';
import {
  accountTokenEmailPlace,
  INVITATIONS_SUBJECT,
  invitationEmailPlace,
  normalizeEmail,
  oidcIdentityEmailPlace,
  userEmails,
  userSubject,
} from './email-index.ts';
import type { FieldCipher } from './field-cipher.ts';
import type { KeyRing } from './keyring.ts';

const PAGE = 500;

/** Seals every address still in the clear; answers how many rows it changed. */
export async function sealExistingEmails(pool: pg.Pool, keys: KeyRing, fields: FieldCipher): Promise<number> {
  const emails = userEmails(keys, fields);
  let changed = 0;

  changed += await pages<{ id: string; email: string; erased: boolean }>(
    pool,
    'select id, email, erased_at is not null as erased from users where email is not null limit $1',
    async (row) => {
      // An erased account kept a made-up address: it keeps none now.
      const columns = row.erased
        ? { email_index: null, email_sealed: null }
        : await emails.columns(row.id, row.email);
      const update =
        'update users set email = null, email_index = $3, email_sealed = $4 where id = $1 and email = $2';
      try {
        return await pool.query(update, [row.id, row.email, columns.email_index, columns.email_sealed]);
      } catch (error) {
        // Another account has the same address once normalised (it differed in spaces, or was
        // written by a process of the version before): this one keeps it sealed but unindexed, so
        // it cannot sign in by it until an admin sorts the two out; the start-up goes on.
        if ((error as { code?: string }).code !== '23505') throw error;
        return pool.query(update, [row.id, row.email, null, columns.email_sealed]);
      }
    },
  );

  changed += await pages<{ token_hash: Buffer; user_id: string; email: string }>(
    pool,
    'select token_hash, user_id, email from account_tokens where email is not null limit $1',
    async (row) => {
      const [sealed] = await fields.seal([
        {
          subject: userSubject(row.user_id),
          place: accountTokenEmailPlace(row.token_hash),
          value: normalizeEmail(row.email),
        },
      ]);
      return pool.query(
        `update account_tokens set email = null, email_index = $3, email_sealed = $4
          where token_hash = $1 and email = $2`,
        [row.token_hash, row.email, await emails.index(row.email), sealed],
      );
    },
  );

  changed += await pages<{ user_id: string; provider: string; subject: string; email: string }>(
    pool,
    'select user_id, provider, subject, email from oidc_identities where email is not null limit $1',
    async (row) => {
      const [sealed] = await fields.seal([
        {
          subject: userSubject(row.user_id),
          place: oidcIdentityEmailPlace(row.provider, row.subject),
          value: row.email,
        },
      ]);
      return pool.query(
        `update oidc_identities set email = null, email_sealed = $4
          where provider = $1 and subject = $2 and email = $3`,
        [row.provider, row.subject, row.email, sealed],
      );
    },
  );

  changed += await pages<{ id: string; email: string }>(
    pool,
    'select id, email from pending_invitations where email is not null limit $1',
    async (row) => {
      const [sealed] = await fields.seal([
        { subject: INVITATIONS_SUBJECT, place: invitationEmailPlace(row.id), value: row.email },
      ]);
      return pool.query(
        `update pending_invitations set email = null, email_hash = $3, email_sealed = $4
          where id = $1 and email = $2`,
        [row.id, row.email, await emails.index(row.email), sealed],
      );
    },
  );
  return changed;
}

/** Runs `seal` on each row the query finds, a page at a time, until it finds none. */
async function pages<Row extends pg.QueryResultRow>(
  pool: pg.Pool,
  query: string,
  seal: (row: Row) => Promise<pg.QueryResult>,
): Promise<number> {
  let changed = 0;
  for (;;) {
    const { rows } = await pool.query<Row>(query, [PAGE]);
    if (rows.length === 0) return changed;
    let progress = 0;
    for (const row of rows) progress += (await seal(row)).rowCount ?? 0;
    changed += progress;
    // Every row read is sealed by this process or, meanwhile, by another one; a page none of
    // which changed is one another process is sealing: read again.
    if (progress === 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
