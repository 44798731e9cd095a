// Secret calendar feed tokens. A calendar app cannot send an Authorization header, so the feed
// URL carries a 256-bit token that alone names its user.
//
// The database keeps only the token's SHA-256 (to find the feed) and a random nonce; the token is
// HMAC-SHA256(feed key, nonce), the feed key derived from the ledger's signing key. So the service
// can show a user the same URL again (GET /v1/me/calendar), a copy of the database alone cannot
// produce a working URL, and a new nonce (rotation) revokes the old URL at once.
import { createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';

export interface FeedKey {
  token(nonce: Uint8Array): string;
}

/** The feed key, derived (HKDF-SHA256) from a server secret under a label of its own. */
export function feedKey(secret: Uint8Array): FeedKey {
  const key = Buffer.from(
    hkdfSync('sha256', secret, new Uint8Array(0), 'connect calendar feed token v1', 32),
  );
  return { token: (nonce) => createHmac('sha256', key).update(nonce).digest('base64url') };
}

export const hashToken = (token: string): Buffer => createHash('sha256').update(token).digest();

/** A token as the feed URL carries it: 32 bytes, base64url without padding. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface Feed {
  token: string;
  createdAt: Date;
}

/** Issues a new token for the user, replacing (revoking) any earlier one. */
export async function rotateFeed(db: Kysely<Database>, key: FeedKey, userId: string): Promise<Feed> {
  const nonce = randomBytes(32);
  const token = key.token(nonce);
  const row = await db
    .insertInto('calendar_feeds')
    .values({ user_id: userId, nonce, token_hash: hashToken(token) })
    .onConflict((conflict) =>
      conflict.column('user_id').doUpdateSet((eb) => ({
        nonce: eb.ref('excluded.nonce'),
        token_hash: eb.ref('excluded.token_hash'),
        created_at: eb.fn('now'),
      })),
    )
    .returning('created_at')
    .executeTakeFirstOrThrow();
  return { token, createdAt: row.created_at };
}

/** The user's current feed, issued the first time (two first requests at once get the same one). */
export async function currentFeed(db: Kysely<Database>, key: FeedKey, userId: string): Promise<Feed> {
  const read = () =>
    db
      .selectFrom('calendar_feeds')
      .select(['nonce', 'token_hash', 'created_at'])
      .where('user_id', '=', userId)
      .executeTakeFirst();
  let row = await read();
  if (!row) {
    const nonce = randomBytes(32);
    await db
      .insertInto('calendar_feeds')
      .values({ user_id: userId, nonce, token_hash: hashToken(key.token(nonce)) })
      .onConflict((conflict) => conflict.column('user_id').doNothing())
      .execute();
    row = await read();
  }
  if (row) {
    const token = key.token(row.nonce);
    if (hashToken(token).equals(row.token_hash)) return { token, createdAt: row.created_at };
  }
  // Issued under another server secret: that URL cannot be shown again, so it is replaced.
  return rotateFeed(db, key, userId);
}

/** Whose feed a token opens, if any. */
export async function feedOwner(db: Kysely<Database>, token: string): Promise<string | undefined> {
  if (!TOKEN_PATTERN.test(token)) return undefined;
  const row = await db
    .selectFrom('calendar_feeds')
    .select('user_id')
    .where('token_hash', '=', hashToken(token))
    .executeTakeFirst();
  return row?.user_id;
}
