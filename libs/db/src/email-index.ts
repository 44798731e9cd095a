// Email addresses at rest: a row keeps an address sealed (it opens only with its subject's key) and
// its blind index (an HMAC under a key derived for this purpose), so an account is still found by
// its address (sign-in, recovery, invitations) while no column holds the address itself, and a
// plain hash that anyone could compute from a list of addresses is no index either.
import { blindIndex } from '@connect/crypto/envelope';
import type { FieldCipher } from './field-cipher.ts';
import type { KeyRing } from './keyring.ts';

/** The one normalisation of an address: what is equal under it is one account. */
export const normalizeEmail = (email: string) => email.trim().toLowerCase();

/** The blind index of an address (normalised first). */
export type EmailIndex = (email: string) => Promise<Buffer>;

export function emailIndex(keys: KeyRing): EmailIndex {
  return async (email) => blindIndex(await keys.derivedKey('email index'), normalizeEmail(email));
}

/** The data key subject of a user's own data. */
export const userSubject = (userId: string) => `user:${userId}`;
/** Where a user's sealed address lives. */
export const userEmailPlace = (userId: string) => `users:${userId}:email`;
/** Where the address a token was mailed to lives (under its user's key). */
export const accountTokenEmailPlace = (tokenHash: Uint8Array) =>
  `account_tokens:${Buffer.from(tokenHash).toString('hex')}:email`;
/** Where what a provider said an identity's address was lives (under its user's key). */
export const oidcIdentityEmailPlace = (provider: string, subject: string) =>
  `oidc_identities:${provider}:${subject}:email`;
/** The subject of invited addresses: nobody's yet, so the service's own key. */
export const INVITATIONS_SUBJECT = 'service:invitations';
/** Where an invited address lives. */
export const invitationEmailPlace = (id: string) => `pending_invitations:${id}:email`;

/** A users row as far as its address goes (`email` is the clear column of a row not yet sealed). */
export interface StoredUserEmail {
  id: string;
  email: string | null;
  email_sealed: Uint8Array | null;
}

export interface UserEmails {
  index: EmailIndex;
  /** The columns a users row stores `email` in: its index and the sealed address (none in the clear). */
  columns(
    userId: string,
    email: string,
  ): Promise<{ email: null; email_index: Buffer; email_sealed: Buffer | null }>;
  /** Each row's address; undefined for one erased (or without one). */
  open(rows: readonly StoredUserEmail[]): Promise<(string | undefined)[]>;
  /** The fields sealed and opened with it (other places of the same subjects). */
  fields: FieldCipher;
}

export function userEmails(keys: KeyRing, fields: FieldCipher): UserEmails {
  const index = emailIndex(keys);
  return {
    index,
    fields,
    async columns(userId, email) {
      const address = normalizeEmail(email);
      const [sealed] = await fields.seal([
        { subject: userSubject(userId), place: userEmailPlace(userId), value: address },
      ]);
      return { email: null, email_index: await index(address), email_sealed: sealed ?? null };
    },
    open: (rows) => openUserEmails(fields, rows),
  };
}

/** Each users row's address; undefined for one erased (or without one). */
export async function openUserEmails(
  fields: FieldCipher,
  rows: readonly StoredUserEmail[],
): Promise<(string | undefined)[]> {
  const sealed = rows.flatMap(({ id, email_sealed }) =>
    email_sealed ? [{ subject: userSubject(id), place: userEmailPlace(id), stored: email_sealed }] : [],
  );
  const opened = await fields.open<string>(sealed);
  const byPlace = new Map(sealed.map((field, i) => [field.place, opened[i]]));
  return rows.map((row) =>
    row.email_sealed ? byPlace.get(userEmailPlace(row.id)) : (row.email ?? undefined),
  );
}

/** What providers said each identity's address was; null where none (or its user's key is erased). */
export async function openIdentityEmails(
  fields: FieldCipher,
  userId: string,
  rows: readonly {
    provider: string;
    subject: string;
    email: string | null;
    email_sealed: Uint8Array | null;
  }[],
): Promise<(string | null)[]> {
  const sealed = rows.flatMap((row) =>
    row.email_sealed
      ? [
          {
            subject: userSubject(userId),
            place: oidcIdentityEmailPlace(row.provider, row.subject),
            stored: row.email_sealed,
          },
        ]
      : [],
  );
  const opened = await fields.open<string>(sealed);
  const byPlace = new Map(sealed.map((field, i) => [field.place, opened[i]]));
  return rows.map((row) =>
    row.email_sealed ? (byPlace.get(oidcIdentityEmailPlace(row.provider, row.subject)) ?? null) : row.email,
  );
}
