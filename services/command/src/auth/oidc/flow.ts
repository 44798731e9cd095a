// The steps of a social login that outlive one request, kept in the database so any instance can
// take the next one: a pending login (started → provider → callback) and the one-time code the app
// exchanges for a session. Only SHA-256 hashes of the browser's key and of the code are stored.
import { createHash, randomBytes } from 'node:crypto';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import * as client from 'openid-client';

type Db = Kysely<Database>;

export const PENDING_LOGIN_SECONDS = 600;
export const APP_CODE_SECONDS = 60;

const sha256 = (text: string) => createHash('sha256').update(text).digest();
const randomToken = () => randomBytes(32).toString('base64url');
const after = (now: Date, seconds: number) => new Date(now.getTime() + seconds * 1000);

export interface PendingLogin {
  provider: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectTo: string;
  /** What the app asked to get back in its redirect (its own CSRF check), if anything. */
  appState: string | null;
}

/**
 * Starts a login: its state, nonce and PKCE verifier are stored under the SHA-256 of a new random
 * key, which the browser keeps in a cookie. Answers the key and what the authorization URL needs.
 */
export async function startPendingLogin(
  db: Db,
  login: { provider: string; redirectTo: string; appState: string | null },
  now: Date,
): Promise<{ key: string; state: string; nonce: string; codeChallenge: string }> {
  const key = randomToken();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const codeVerifier = client.randomPKCECodeVerifier();
  await db.deleteFrom('oidc_logins').where('expires_at', '<=', now).execute();
  await db
    .insertInto('oidc_logins')
    .values({
      key_hash: sha256(key),
      provider: login.provider,
      state,
      nonce,
      code_verifier: codeVerifier,
      redirect_to: login.redirectTo,
      app_state: login.appState,
      created_at: now,
      expires_at: after(now, PENDING_LOGIN_SECONDS),
    })
    .execute();
  return { key, state, nonce, codeChallenge: await client.calculatePKCECodeChallenge(codeVerifier) };
}

/** Uses up the pending login the browser's key names, whatever comes of it; undefined when none is live. */
export async function takePendingLogin(
  db: Db,
  key: string,
  provider: string,
  now: Date,
): Promise<PendingLogin | undefined> {
  const row = await db
    .deleteFrom('oidc_logins')
    .where('key_hash', '=', sha256(key))
    .where('provider', '=', provider)
    .returningAll()
    .executeTakeFirst();
  if (!row || row.expires_at <= now) return undefined;
  return {
    provider: row.provider,
    state: row.state,
    nonce: row.nonce,
    codeVerifier: row.code_verifier,
    redirectTo: row.redirect_to,
    appState: row.app_state,
  };
}

/** A one-time code for the app; only its hash is kept. */
export async function issueAppCode(
  db: Db,
  grant: {
    userId: string;
    provider: string;
    redirectTo: string;
    userAgent: string | null;
    address: string | null;
  },
  now: Date,
): Promise<string> {
  const code = randomToken();
  await db.deleteFrom('oidc_app_codes').where('expires_at', '<=', now).execute();
  await db
    .insertInto('oidc_app_codes')
    .values({
      code_hash: sha256(code),
      user_id: grant.userId,
      provider: grant.provider,
      redirect_to: grant.redirectTo,
      user_agent: grant.userAgent,
      address: grant.address,
      created_at: now,
      expires_at: after(now, APP_CODE_SECONDS),
    })
    .execute();
  return code;
}

export interface AppCodeGrant {
  userId: string;
  provider: string;
  redirectTo: string;
  /** The browser that signed in at the provider. */
  userAgent: string | null;
  address: string | null;
}

/** Uses up a one-time code; undefined when it is unknown, used or expired. */
export async function redeemAppCode(db: Db, code: string, now: Date): Promise<AppCodeGrant | undefined> {
  const row = await db
    .deleteFrom('oidc_app_codes')
    .where('code_hash', '=', sha256(code))
    .returningAll()
    .executeTakeFirst();
  if (!row || row.expires_at <= now) return undefined;
  return {
    userId: row.user_id,
    provider: row.provider,
    redirectTo: row.redirect_to,
    userAgent: row.user_agent,
    address: row.address,
  };
}

/** Origin and path of a URL: a redirect matches an allowed one when these are equal (its query may differ). */
export const withoutQuery = (url: URL) => `${url.protocol}//${url.host}${url.pathname}`;

/**
 * Uses up the app's one-time code (POST /v1/auth/token, grant_type=authorization_code): the user
 * it signs in, or undefined when it is unknown, used, expired, or was sent to another redirect_uri.
 */
export async function exchangeAppCode(
  db: Db,
  code: string,
  redirectUri: string | undefined,
  now: Date,
): Promise<AppCodeGrant | undefined> {
  const grant = await redeemAppCode(db, code, now);
  if (!grant || redirectUri === undefined) return grant;
  const sent = URL.canParse(redirectUri) ? withoutQuery(new URL(redirectUri)) : undefined;
  return sent === withoutQuery(new URL(grant.redirectTo)) ? grant : undefined;
}
