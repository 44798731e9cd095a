// An account's identities at OpenID providers, and which account a provider's ID token signs into:
// the account linked to its subject; else the account with its email, linked only when both the
// provider and this service have verified that email; else a new account.
import {
  type Database,
  type FieldCipher,
  normalizeEmail,
  oidcIdentityEmailPlace,
  openIdentityEmails,
  type UserEmails,
  userSubject,
} from '@connect/db';
import { profileRegistered } from '@connect/domain';
import type { Ledger } from '@connect/ledger';
import { type Kysely, sql, type Transaction } from 'kysely';
import { claimEmailInvitations } from '../../commitments/email-invitations.ts';
import { createAccount } from '../create-account.ts';

type Db = Kysely<Database>;

/** What the ID token says about the person (its verified claims). */
export interface IdentityClaims {
  sub: string;
  email?: unknown;
  email_verified?: unknown;
  name?: unknown;
  preferred_username?: unknown;
}

export type SignIn =
  | { outcome: 'signed-in'; userId: string; created: boolean }
  | { outcome: 'refused'; reason: string };

export interface Identity {
  provider: string;
  email: string | null;
  createdAt: Date;
  lastSignInAt: Date;
}

const text = (value: unknown) =>
  typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
const verified = (value: unknown) => value === true || value === 'true';
const DISPLAY_NAME = profileRegistered.shape.displayName;

function displayNameOf(claims: IdentityClaims, email: string): string {
  for (const candidate of [text(claims.name), text(claims.preferred_username), email.split('@')[0]]) {
    const parsed = DISPLAY_NAME.safeParse(candidate?.slice(0, 100));
    if (parsed.success) return parsed.data;
  }
  return 'New user';
}

/** Finds or creates the account the provider's identity signs into, linking it as the rules say. */
export async function signInWithIdentity(
  db: Db,
  ledger: Ledger,
  emails: UserEmails,
  provider: { name: string; title: string },
  claims: IdentityClaims,
  now: Date,
): Promise<SignIn> {
  const email = text(claims.email) && normalizeEmail(String(claims.email));
  const emailVerified = email !== undefined && verified(claims.email_verified);
  const emailIndex = email === undefined ? undefined : await emails.index(email);
  const signIn = await db.transaction().execute(async (trx): Promise<SignIn> => {
    // Two first sign-ins of one identity at once must not make two accounts.
    await sql`select pg_advisory_xact_lock(hashtext(${`oidc:${provider.name}:${claims.sub}`}))`.execute(trx);
    const known = await trx
      .updateTable('oidc_identities')
      .set({ last_sign_in_at: now, email: null, email_verified: emailVerified })
      .where('provider', '=', provider.name)
      .where('subject', '=', claims.sub)
      .returning('user_id')
      .executeTakeFirst();
    if (known) {
      await trx
        .updateTable('oidc_identities')
        .set({
          email_sealed: await sealIdentityEmail(
            emails.fields,
            known.user_id,
            provider.name,
            claims.sub,
            email,
          ),
        })
        .where('provider', '=', provider.name)
        .where('subject', '=', claims.sub)
        .execute();
      return { outcome: 'signed-in', userId: known.user_id, created: false };
    }
    if (email === undefined || emailIndex === undefined) {
      return {
        outcome: 'refused',
        reason: `${provider.title} did not share an email address; allow it to, or sign up with a password.`,
      };
    }
    const existing = await trx
      .selectFrom('users')
      .select(['id', 'email_verified_at'])
      .where('email_index', '=', emailIndex)
      .forUpdate()
      .executeTakeFirst();
    if (existing) {
      if (!emailVerified) {
        return {
          outcome: 'refused',
          reason: `An account with ${email} exists, but ${provider.title} has not verified that this address is yours, so it cannot be linked. Sign in with your password instead.`,
        };
      }
      if (existing.email_verified_at === null) {
        return {
          outcome: 'refused',
          reason: `An account with ${email} exists, but its email is not verified yet. Sign in with your password and verify your email, then sign in with ${provider.title} again to link it.`,
        };
      }
      await linkIdentity(
        trx,
        emails.fields,
        existing.id,
        provider.name,
        claims.sub,
        email,
        emailVerified,
        now,
      );
      return { outcome: 'signed-in', userId: existing.id, created: false };
    }
    const user = await createAccount(trx, ledger, emails, {
      email,
      displayName: displayNameOf(claims, email),
      passwordHash: null,
      emailVerifiedAt: emailVerified ? now : null,
    });
    if (!user) throw new Error('an account with this email appeared during the sign-in');
    await linkIdentity(trx, emails.fields, user.id, provider.name, claims.sub, email, emailVerified, now);
    return { outcome: 'signed-in', userId: user.id, created: true };
  });
  // A new account with an address the provider verified takes the invitations sent to it.
  if (signIn.outcome === 'signed-in' && signIn.created && emailVerified && emailIndex !== undefined)
    await claimEmailInvitations(db, ledger, { id: signIn.userId, emailIndex }, { now });
  return signIn;
}

/** What the provider said the identity's address is, sealed under its user's key. */
async function sealIdentityEmail(
  fields: FieldCipher,
  userId: string,
  provider: string,
  subject: string,
  email: string | undefined,
): Promise<Buffer | null> {
  if (email === undefined) return null;
  const [sealed] = await fields.seal([
    { subject: userSubject(userId), place: oidcIdentityEmailPlace(provider, subject), value: email },
  ]);
  return sealed ?? null;
}

async function linkIdentity(
  trx: Transaction<Database>,
  fields: FieldCipher,
  userId: string,
  provider: string,
  subject: string,
  email: string,
  emailVerified: boolean,
  now: Date,
): Promise<void> {
  await trx
    .insertInto('oidc_identities')
    .values({
      user_id: userId,
      provider,
      subject,
      email_sealed: await sealIdentityEmail(fields, userId, provider, subject, email),
      email_verified: emailVerified,
      created_at: now,
      last_sign_in_at: now,
    })
    .execute();
}

export async function listIdentities(db: Db, fields: FieldCipher, userId: string): Promise<Identity[]> {
  const rows = await db
    .selectFrom('oidc_identities')
    .select(['provider', 'subject', 'email', 'email_sealed', 'created_at', 'last_sign_in_at'])
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .execute();
  const emails = await openIdentityEmails(fields, userId, rows);
  return rows.map((row, i) => ({
    provider: row.provider,
    email: emails[i] ?? null,
    createdAt: row.created_at,
    lastSignInAt: row.last_sign_in_at,
  }));
}

export type Unlink = 'unlinked' | 'not-linked' | 'last-way-to-sign-in';

/** Unlinks the account's identities at a provider, unless that would leave no way to sign in. */
export async function unlinkIdentity(db: Db, userId: string, provider: string): Promise<Unlink> {
  return db.transaction().execute(async (trx) => {
    const user = await trx
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', userId)
      .forUpdate()
      .executeTakeFirst();
    const identities = await trx
      .selectFrom('oidc_identities')
      .select('provider')
      .where('user_id', '=', userId)
      .execute();
    if (!user || !identities.some((identity) => identity.provider === provider)) return 'not-linked';
    const others = identities.filter((identity) => identity.provider !== provider).length;
    if (user.password_hash === null && others === 0) return 'last-way-to-sign-in';
    await trx
      .deleteFrom('oidc_identities')
      .where('user_id', '=', userId)
      .where('provider', '=', provider)
      .execute();
    return 'unlinked';
  });
}
