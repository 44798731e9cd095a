// Social login end to end: a real OpenID provider (oidc-provider) and a small hand-written issuer
// (for ID tokens no honest provider would sign) listen on loopback; the browser is fetch following
// Location headers with a cookie jar; the service talks to the providers over HTTP with
// openid-client.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, loadConfig } from '@connect/db';
import { readStream } from '@connect/ledger';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { signUp, type TestApp, testApp } from './support.ts';

const APP_URL = 'https://app.example.test/auth/done';
const CLIENT_ID = 'connect-test';
const CLIENT_SECRET = 'a-client-secret-for-tests-only';

async function listen(handler: http.RequestListener): Promise<{ server: http.Server; origin: string }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

// The people the provider knows, by subject, and who signs in at its login prompt next.
interface Person {
  email: string;
  email_verified: boolean;
  name?: string;
}
const people = new Map<string, Person>();
let signingIn = '';

async function startProvider(callbacks: string[]) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'test-1' };
  // Listening first, on a port the OS chose: the provider must know its issuer URL when made.
  let handle: http.RequestListener = (_req, res) => res.writeHead(503).end();
  const { server, origin: issuer } = await listen((req, res) => handle(req, res));
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: callbacks,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [signingKey as JWK & { kty: 'RSA' }] },
    cookies: { keys: ['cookie-key-for-tests'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: KoaContextWithOIDC, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const person = people.get(sub);
      return person && { accountId: sub, claims: async () => ({ sub, ...person }) };
    },
  });
  const callback = provider.callback();
  handle = async (req, res) => {
    if (!req.url?.startsWith('/interaction/')) return callback(req, res);
    // The login and consent pages: the chosen person logs in and consents, as a person would.
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'login') {
        await provider.interactionFinished(req, res, { login: { accountId: signingIn } });
        return;
      }
      const grant = new provider.Grant({ accountId: signingIn, clientId: CLIENT_ID });
      grant.addOIDCScope('openid email profile');
      await provider.interactionFinished(
        req,
        res,
        { consent: { grantId: await grant.save() } },
        {
          mergeWithLastSubmission: true,
        },
      );
    } catch (error) {
      res.writeHead(500).end(String(error));
    }
  };
  return { issuer, server };
}

// A small issuer of our own: discovery, JWKS, an authorization endpoint that signs in at once, and
// a token endpoint that checks the client and PKCE, then answers with the ID token the test orders.
interface Forgery {
  aud?: string;
  expired?: boolean;
  foreignKey?: boolean;
}
async function startForge() {
  const good = await generateKeyPair('RS256');
  const foreign = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(good.publicKey)), alg: 'RS256', use: 'sig', kid: 'forge-1' };
  const codes = new Map<string, { nonce: string; challenge: string; redirectUri: string }>();
  const forge = { next: {} as Forgery, issuer: '', server: undefined as unknown as http.Server };
  const body = async (req: http.IncomingMessage) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    return new URLSearchParams(text);
  };
  // client_secret_basic: each half form-urlencoded, then base64 (RFC 6749 section 2.3.1).
  const clientOf = (authorization = '') =>
    Buffer.from(authorization.replace(/^Basic /, ''), 'base64')
      .toString()
      .split(':')
      .map((half) => decodeURIComponent(half.replaceAll('+', ' ')))
      .join(':');
  const json = (res: http.ServerResponse, status: number, value: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
  const { server, origin } = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', forge.issuer);
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer: forge.issuer,
        authorization_endpoint: `${forge.issuer}/authorize`,
        token_endpoint: `${forge.issuer}/token`,
        jwks_uri: `${forge.issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic'],
      });
    }
    if (url.pathname === '/jwks') return json(res, 200, { keys: [jwk] });
    if (url.pathname === '/authorize') {
      const code = randomBytes(16).toString('base64url');
      const redirectUri = url.searchParams.get('redirect_uri') ?? '';
      codes.set(code, {
        nonce: url.searchParams.get('nonce') ?? '',
        challenge: url.searchParams.get('code_challenge') ?? '',
        redirectUri,
      });
      const back = new URL(redirectUri);
      back.searchParams.set('code', code);
      back.searchParams.set('state', url.searchParams.get('state') ?? '');
      return res.writeHead(302, { location: back.href }).end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      const form = await body(req);
      const issued = codes.get(form.get('code') ?? '');
      codes.delete(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      if (clientOf(req.headers.authorization) !== `${CLIENT_ID}:${CLIENT_SECRET}`)
        return json(res, 401, { error: 'invalid_client' });
      if (!issued || issued.challenge !== challenge || issued.redirectUri !== form.get('redirect_uri'))
        return json(res, 400, { error: 'invalid_grant' });
      const now = Math.floor(Date.now() / 1000);
      const { aud = CLIENT_ID, expired = false, foreignKey = false } = forge.next;
      const idToken = await new SignJWT({
        nonce: issued.nonce,
        email: 'forged@example.test',
        email_verified: true,
      })
        .setProtectedHeader({ alg: 'RS256', kid: 'forge-1' })
        .setIssuer(forge.issuer)
        .setSubject('forged-subject')
        .setAudience(aud)
        .setIssuedAt(expired ? now - 7200 : now)
        .setExpirationTime(expired ? now - 3600 : now + 300)
        .sign(foreignKey ? foreign.privateKey : good.privateKey);
      return json(res, 200, {
        access_token: 'forge-at',
        token_type: 'Bearer',
        expires_in: 300,
        id_token: idToken,
      });
    }
    res.writeHead(404).end();
  });
  forge.issuer = origin;
  forge.server = server;
  return forge;
}

// The browser: follows redirects, keeping cookies per host, until it is sent to the app (or to a
// URL the test wants to tamper with first).
function browser() {
  const jar = new Map<string, Map<string, string>>();
  async function request(url: URL): Promise<Response> {
    const cookies = [...(jar.get(url.host) ?? new Map())].map(([name, value]) => `${name}=${value}`);
    const response = await fetch(url, {
      redirect: 'manual',
      headers: { ...(cookies.length ? { cookie: cookies.join('; ') } : {}), 'user-agent': 'TestBrowser/1.0' },
    });
    for (const header of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = header.split(';');
      const [name = '', ...value] = pair.trim().split('=');
      const cookies = jar.get(url.host) ?? new Map<string, string>();
      jar.set(url.host, cookies);
      const expired = attributes.some(
        (a) => /^\s*max-age=0$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a),
      );
      if (expired || value.join('=') === '') cookies.delete(name);
      else cookies.set(name, value.join('='));
    }
    return response;
  }
  return {
    /** Follows redirects from `url`; stops before a URL `stop` picks, or at the app, or at a page. */
    async go(
      start: string | URL,
      stop: (url: URL) => boolean = () => false,
    ): Promise<{ url: URL; response?: Response }> {
      let url = new URL(start);
      for (let hops = 0; hops < 20; hops++) {
        if (url.href.startsWith('https://app.example.test/') || stop(url)) return { url };
        const response = await request(url);
        const location = response.headers.get('location');
        if (response.status < 300 || response.status >= 400 || !location) return { url, response };
        await response.arrayBuffer();
        url = new URL(location, url);
      }
      throw new Error('too many redirects');
    },
  };
}

let t: TestApp;
let api: string;
let provider: Awaited<ReturnType<typeof startProvider>>;
let forge: Awaited<ReturnType<typeof startForge>>;
let clock = () => new Date();

/** The app's own server: listening before the app is made, since the app must know its URL. */
let apiServer: http.Server;

beforeAll(async () => {
  let app: TestApp['app'] | undefined;
  ({ server: apiServer, origin: api } = await listen((req, res) =>
    app ? app.routing(req, res) : res.writeHead(503).end(),
  ));
  provider = await startProvider([`${api}/v1/auth/oidc/test/callback`]);
  forge = await startForge();
  const config = loadConfig({
    CONNECT_PUBLIC_API_URL: api,
    CONNECT_AUTH_REDIRECT_URLS: `${APP_URL}, com.example.app:/oauth`,
    CONNECT_OIDC_TEST_ISSUER: provider.issuer,
    CONNECT_OIDC_TEST_CLIENT_ID: CLIENT_ID,
    CONNECT_OIDC_TEST_CLIENT_SECRET: CLIENT_SECRET,
    CONNECT_OIDC_FORGE_ISSUER: forge.issuer,
    CONNECT_OIDC_FORGE_CLIENT_ID: CLIENT_ID,
    CONNECT_OIDC_FORGE_CLIENT_SECRET: CLIENT_SECRET,
  });
  t = await testApp({
    now: () => clock(),
    oidc: {
      providers: config.oidcProviders,
      redirectUrls: config.authRedirectUrls,
      publicApiUrl: config.publicApiUrl,
    },
  });
  await t.app.ready();
  app = t.app;
});
afterAll(async () => {
  apiServer.closeAllConnections();
  await new Promise((resolve) => apiServer.close(resolve));
  await t.close();
  await new Promise((resolve) => provider.server.close(resolve));
  await new Promise((resolve) => forge.server.close(resolve));
});

let people_ = 0;
function person(verified: boolean, email?: string): { sub: string; email: string } {
  const sub = `person-${++people_}-${Date.now()}`;
  const address = email ?? `${sub}@example.test`;
  people.set(sub, { email: address, email_verified: verified, name: `Person ${people_}` });
  return { sub, email: address };
}

const startUrl = (name = 'test', redirectTo = APP_URL) =>
  `${api}/v1/auth/oidc/${name}/start?redirect_to=${encodeURIComponent(redirectTo)}`;

/** Signs in at the provider as `sub`; answers where the browser lands at the app. */
async function signIn(sub: string, name = 'test'): Promise<URL> {
  signingIn = sub;
  const { url } = await browser().go(startUrl(name));
  expect(url.origin + url.pathname).toBe(APP_URL);
  return url;
}

async function exchange(code: string) {
  return t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'authorization_code', code },
  });
}

const isCallback = (url: URL) => url.pathname.endsWith('/callback');
const isAuthorize = (url: URL) => url.origin === provider.issuer && url.pathname === '/auth';

describe('signing in with an OpenID provider', () => {
  test('a first sign-in creates an account with its profile; the app exchanges its code for tokens', async () => {
    const ana = person(true);
    const landed = await signIn(ana.sub);
    const code = landed.searchParams.get('code');
    expect(code).toMatch(/^[\w-]{43}$/);
    const tokens = await exchange(code ?? '');
    expect(tokens.statusCode).toBe(200);
    const body = tokens.json();
    expect(body).toMatchObject({ token_type: 'Bearer', user: { email: ana.email } });
    const me = await t.app.inject({
      method: 'GET',
      url: '/v1/auth/me',
      headers: { authorization: `Bearer ${body.access_token}` },
    });
    expect(me.json()).toMatchObject({ id: body.user.id, email: ana.email, emailVerified: true });
    const profile = await readStream(t.database.db, t.deps.ledger, `profile-${body.user.id}`);
    expect(profile.map((e) => [e.type, e.data])).toEqual([
      ['ProfileRegistered', { userId: body.user.id, displayName: people.get(ana.sub)?.name }],
    ]);
    const stored = await t.database.pool.query('select password_hash from users where id = $1', [
      body.user.id,
    ]);
    expect(stored.rows[0].password_hash).toBeNull();
    // The refresh token of that session works like any other.
    const refreshed = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'refresh_token', refresh_token: body.refresh_token },
    });
    expect(refreshed.statusCode).toBe(200);

    // Signing in again is the same account.
    const again = await exchange((await signIn(ana.sub)).searchParams.get('code') ?? '');
    expect(again.json().user.id).toBe(body.user.id);
  });

  test('the app’s state comes back, and a one-time code works once', async () => {
    const ben = person(true);
    signingIn = ben.sub;
    const { url } = await browser().go(`${startUrl()}&state=app-state-1`);
    expect(url.searchParams.get('state')).toBe('app-state-1');
    const code = url.searchParams.get('code') ?? '';
    expect((await exchange(code)).statusCode).toBe(200);
    const replayed = await exchange(code);
    expect(replayed.statusCode).toBe(400);
    expect(JSON.stringify(replayed.json())).toMatch(/invalid[-_]grant/);
  });

  test('a one-time code older than a minute is refused', async () => {
    const cleo = person(true);
    const code = (await signIn(cleo.sub)).searchParams.get('code') ?? '';
    const started = Date.now();
    clock = () => new Date(Date.now() + 61_000);
    try {
      const late = await exchange(code);
      expect(late.statusCode).toBe(400);
      expect(JSON.stringify(late.json())).toMatch(/invalid[-_]grant/);
    } finally {
      clock = () => new Date();
    }
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  test('an existing password account with a verified email is linked, and keeps its password', async () => {
    const dan = await signUp(t.app, 'Dan');
    await t.database.pool.query('update users set email_verified_at = now() where id = $1', [dan.userId]);
    const identity = person(true, dan.email.toUpperCase());
    const tokens = await exchange((await signIn(identity.sub)).searchParams.get('code') ?? '');
    expect(tokens.json().user.id).toBe(dan.userId);
    const listed = await t.app.inject({ method: 'GET', url: '/v1/me/identities', headers: dan.auth });
    expect(listed.json()).toEqual([
      {
        provider: 'test',
        email: dan.email,
        createdAt: expect.any(String),
        lastSignInAt: expect.any(String),
      },
    ]);
    expect(JSON.stringify(listed.json())).not.toMatch(/token|sub/i);
    // With a password, unlinking the only identity is fine.
    const unlinked = await t.app.inject({
      method: 'DELETE',
      url: '/v1/me/identities/test',
      headers: dan.auth,
    });
    expect(unlinked.statusCode).toBe(204);
    const none = await t.app.inject({ method: 'GET', url: '/v1/me/identities', headers: dan.auth });
    expect(none.json()).toEqual([]);
  });

  test('an account only a provider signs into cannot unlink it', async () => {
    const eve = person(true);
    const tokens = (await exchange((await signIn(eve.sub)).searchParams.get('code') ?? '')).json();
    const auth = { authorization: `Bearer ${tokens.access_token}` };
    const refused = await t.app.inject({ method: 'DELETE', url: '/v1/me/identities/test', headers: auth });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().detail).toMatch(/only way into this account/);
    const unknown = await t.app.inject({ method: 'DELETE', url: '/v1/me/identities/other', headers: auth });
    expect(unknown.statusCode).toBe(404);
    const listed = await t.app.inject({ method: 'GET', url: '/v1/me/identities', headers: auth });
    expect(listed.json()).toHaveLength(1);
  });

  test('an account whose email is not verified is not linked', async () => {
    const fay = await signUp(t.app, 'Fay');
    const identity = person(true, fay.email);
    const landed = await signIn(identity.sub);
    expect(landed.searchParams.get('code')).toBeNull();
    expect(landed.searchParams.get('error')).toBe('access_denied');
    expect(landed.searchParams.get('error_description')).toMatch(/email is not verified/);
    const linked = await t.database.pool.query(
      'select count(*)::int as n from oidc_identities where subject = $1',
      [identity.sub],
    );
    expect(linked.rows[0].n).toBe(0);
  });

  test('an email the provider has not verified does not link to an account', async () => {
    const gus = await signUp(t.app, 'Gus');
    await t.database.pool.query('update users set email_verified_at = now() where id = $1', [gus.userId]);
    const identity = person(false, gus.email);
    const landed = await signIn(identity.sub);
    expect(landed.searchParams.get('error')).toBe('access_denied');
    expect(landed.searchParams.get('error_description')).toMatch(
      /has not verified that this address is yours/,
    );
  });

  test('a new account from an unverified email is created unverified', async () => {
    const hal = person(false);
    const tokens = (await exchange((await signIn(hal.sub)).searchParams.get('code') ?? '')).json();
    expect(tokens.user).toMatchObject({ email: hal.email, emailVerified: false });
  });
});

describe('what the service refuses', () => {
  test('a redirect_to outside CONNECT_AUTH_REDIRECT_URLS, and an unknown provider', async () => {
    for (const target of [
      'https://evil.example.test/auth/done',
      `${APP_URL}/more`,
      `${APP_URL}#x`,
      'javascript:alert(1)',
    ]) {
      const response = await t.app.inject({ method: 'GET', url: startUrl('test', target).slice(api.length) });
      expect(response.statusCode).toBe(400);
      expect(response.headers.location).toBeUndefined();
      expect(response.json().errors).toEqual([{ path: 'query.redirect_to', message: expect.any(String) }]);
    }
    const query = await t.app.inject({
      method: 'GET',
      url: `${startUrl('test', APP_URL).slice(api.length)}%3Fx%3D1`,
    });
    expect(query.statusCode).toBe(302);
    const app = await t.app.inject({
      method: 'GET',
      url: startUrl('test', 'com.example.app:/oauth').slice(api.length),
    });
    expect(app.statusCode).toBe(302);
    const location = new URL(app.headers.location as string);
    expect(location.origin).toBe(provider.issuer);
    expect(Object.fromEntries(location.searchParams)).toMatchObject({
      scope: 'openid email profile',
      code_challenge_method: 'S256',
      response_type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: `${api}/v1/auth/oidc/test/callback`,
    });
    const unknown = await t.app.inject({ method: 'GET', url: startUrl('nope').slice(api.length) });
    expect(unknown.statusCode).toBe(404);
  });

  test('an answer whose state was changed', async () => {
    signingIn = person(true).sub;
    const b = browser();
    const { url: callback } = await b.go(startUrl(), isCallback);
    callback.searchParams.set('state', 'not-the-state');
    const { url } = await b.go(callback);
    expect(url.searchParams.get('error')).toBe('invalid_request');
    expect(url.searchParams.get('error_description')).toMatch(/state does not match/);
  });

  test('a callback in a browser that did not start the sign-in, or twice', async () => {
    signingIn = person(true).sub;
    const b = browser();
    const { url: callback } = await b.go(startUrl(), isCallback);
    const elsewhere = await browser().go(callback);
    expect(elsewhere.response?.status).toBe(400);
    expect(await elsewhere.response?.json()).toMatchObject({ errors: [{ path: 'query.state' }] });
    const { url } = await b.go(callback);
    expect(url.searchParams.get('code')).not.toBeNull();
    const again = await b.go(callback);
    expect(again.response?.status).toBe(400);
  });

  test('the provider’s authorization code used a second time', async () => {
    signingIn = person(true).sub;
    const b = browser();
    const { url: first } = await b.go(startUrl(), isCallback);
    expect((await b.go(first)).url.searchParams.get('code')).not.toBeNull();
    // A new sign-in in the same browser, answered with the old code.
    const { url: second } = await b.go(startUrl(), isCallback);
    second.searchParams.set('code', first.searchParams.get('code') ?? '');
    const { url } = await b.go(second);
    expect(url.searchParams.get('code')).toBeNull();
    expect(url.searchParams.get('error')).toBe('access_denied');
    expect(url.searchParams.get('error_description')).toMatch(/invalid_grant/);
  });

  test('an ID token with another nonce', async () => {
    signingIn = person(true).sub;
    const b = browser();
    const { url: authorize } = await b.go(startUrl(), isAuthorize);
    authorize.searchParams.set('nonce', 'a-nonce-of-someone-else');
    const { url } = await b.go(authorize);
    expect(url.searchParams.get('error')).toBe('access_denied');
    expect(url.searchParams.get('error_description')).toMatch(/"nonce"/);
  });

  test('ID tokens for another audience, expired, or signed by another key', async () => {
    const cases: [Forgery, RegExp][] = [
      [{ aud: 'someone-else' }, /"aud"/],
      [{ expired: true }, /"exp"|timestamp|expired/i],
      [{ foreignKey: true }, /signature|key/i],
    ];
    for (const [forgery, reason] of cases) {
      forge.next = forgery;
      const { url } = await browser().go(startUrl('forge'));
      expect(url.searchParams.get('code')).toBeNull();
      expect(url.searchParams.get('error')).toBe('access_denied');
      expect(url.searchParams.get('error_description')).toMatch(reason);
    }
    // The same issuer with an honest ID token signs in.
    forge.next = {};
    const { url } = await browser().go(startUrl('forge'));
    expect((await exchange(url.searchParams.get('code') ?? '')).json().user.email).toBe(
      'forged@example.test',
    );
  });
});

describe('configuration', () => {
  test('a provider needs all three variables, and an issuer over https (or http on loopback)', () => {
    const partial = () => loadConfig({ CONNECT_OIDC_GOOGLE_ISSUER: 'https://accounts.google.com' });
    expect(partial).toThrow(ConfigError);
    expect(partial).toThrow(/CONNECT_OIDC_GOOGLE_CLIENT_ID/);
    const plain = () =>
      loadConfig({
        CONNECT_OIDC_ACME_ISSUER: 'http://idp.acme.test',
        CONNECT_OIDC_ACME_CLIENT_ID: 'x',
        CONNECT_OIDC_ACME_CLIENT_SECRET: 'y',
      });
    expect(plain).toThrow(/CONNECT_OIDC_ACME_ISSUER/);
    const config = loadConfig({
      CONNECT_OIDC_GOOGLE_ISSUER: 'https://accounts.google.com',
      CONNECT_OIDC_GOOGLE_CLIENT_ID: 'id',
      CONNECT_OIDC_GOOGLE_CLIENT_SECRET: 'secret',
    });
    expect(config.oidcProviders).toEqual([
      { name: 'google', issuer: 'https://accounts.google.com', clientId: 'id', clientSecret: 'secret' },
    ]);
    expect(() => loadConfig({ CONNECT_AUTH_REDIRECT_URLS: 'javascript:alert(1)' })).toThrow(
      /CONNECT_AUTH_REDIRECT_URLS/,
    );
    try {
      loadConfig({ CONNECT_OIDC_X_ISSUER: 'https://x.test', CONNECT_OIDC_X_CLIENT_SECRET: 'hunter2-secret' });
    } catch (error) {
      expect(String(error)).not.toContain('hunter2-secret');
    }
  });
});
