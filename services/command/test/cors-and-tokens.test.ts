// The token endpoint the OAuth way (RFC 6749 §5: form bodies, no-store, `error` codes), bearer
// challenges on 401 (RFC 6750 §3), and what browsers are told: CORS for the configured origins,
// security headers everywhere, pages with their own content security policy.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

const ALLOWED = 'https://app.example.com';
const REFUSED = 'https://evil.example.net';

let t: TestApp;
let browserApp: FastifyInstance;
let ana: Account;
beforeAll(async () => {
  t = await testApp();
  browserApp = buildApp(t.deps, { logLevel: 'silent', corsOrigins: [ALLOWED, 'http://localhost:5173'] });
  await browserApp.ready();
  ana = await signUp(t.app, 'Oauth');
});
afterAll(async () => {
  await browserApp.close();
  await t.close();
});

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const token = (payload: string | Record<string, unknown>, headers: Record<string, string> = FORM) =>
  t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    headers: typeof payload === 'string' ? headers : {},
    payload,
  });
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('POST /v1/auth/token, the OAuth way', () => {
  test('a form-encoded password grant logs in, and the answer is not to be cached', async () => {
    const response = await token(
      form({ grant_type: 'password', email: ana.email, password: 'correct horse battery' }),
    );
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ token_type: 'Bearer', user: { id: ana.userId } });
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.headers.pragma).toBe('no-cache');
    const refreshed = await token(
      form({ grant_type: 'refresh_token', refresh_token: response.json().refresh_token }),
    );
    expect(refreshed.statusCode).toBe(200);
  });

  test('JSON keeps working, and is not cached either', async () => {
    const response = await token({
      grant_type: 'password',
      email: ana.email,
      password: 'correct horse battery',
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
  });

  test('a wrong password or refresh token is invalid_grant, as a problem too', async () => {
    const wrong = await token(form({ grant_type: 'password', email: ana.email, password: 'not it at all' }));
    expect(wrong.statusCode).toBe(400);
    expect(wrong.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(wrong.headers['cache-control']).toBe('no-store');
    expect(wrong.json()).toMatchObject({
      type: '/problems/invalid-grant',
      status: 400,
      error: 'invalid_grant',
      error_description: 'The email or the password is wrong.',
    });
    expect(wrong.body).not.toContain('not it at all');
    const unknown = await token({ grant_type: 'refresh_token', refresh_token: 'no-such-token' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ error: 'invalid_grant' });
  });

  test('a missing or unknown grant_type is unsupported_grant_type', async () => {
    for (const body of [form({ grant_type: 'client_credentials' }), form({ email: ana.email })]) {
      const response = await token(body);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({
        type: '/problems/invalid-input',
        error: 'unsupported_grant_type',
        errors: [{ path: 'body.grant_type' }],
      });
    }
    expect((await token({ grant_type: 'implicit' })).json().error).toBe('unsupported_grant_type');
  });

  test('a malformed body is invalid_request, naming the field', async () => {
    const missing = await token(form({ grant_type: 'password', email: ana.email }));
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toMatchObject({ error: 'invalid_request', errors: [{ path: 'body.password' }] });
    expect(missing.json().error_description).toContain('body.password');
    const twice = await token('grant_type=password&grant_type=refresh_token');
    expect(twice.statusCode).toBe(400);
    expect(twice.json()).toMatchObject({ error: 'invalid_request', errors: [{ path: 'body.grant_type' }] });
    const badJson = await token('{"grant_type":', { 'content-type': 'application/json' });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json()).toMatchObject({ error: 'invalid_request' });
    const huge = await token(form({ grant_type: 'password', email: ana.email, password: 'x'.repeat(5000) }));
    expect(huge.statusCode).toBe(413);
    expect(huge.json()).toMatchObject({ type: '/problems/too-large', error: 'invalid_request' });
  });

  test('only the token endpoint takes a form; signup stays JSON', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      headers: FORM,
      payload: form({ email: 'form@example.test', password: 'correct horse battery', displayName: 'F' }),
    });
    expect(response.statusCode).toBe(415);
    expect(response.json()).toMatchObject({ type: '/problems/unsupported-media-type' });
    expect(response.json().error).toBeUndefined();
  });
});

describe('401 answers say how to authenticate (RFC 6750 §3)', () => {
  test('without a token: the scheme and realm, no error', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/v1/auth/me' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="connect"');
  });

  test('with a bad or expired token: invalid_token and why', async () => {
    const response = await t.app.inject({
      method: 'GET',
      url: '/v1/auth/me',
      headers: { authorization: `Bearer ${ana.token}x` },
    });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(
      /^Bearer realm="connect", error="invalid_token", error_description="[^"]+"$/,
    );
    const malformed = await t.app.inject({
      method: 'POST',
      url: '/v1/commitments',
      headers: { authorization: 'Bearer not a token' },
      payload: { type: 'personal', title: 'x' },
    });
    expect(malformed.statusCode).toBe(401);
    expect(malformed.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  test('a session that ended: invalid_token', async () => {
    const ben = await signUp(t.app, 'Leaver');
    await t.app.inject({ method: 'POST', url: '/v1/auth/logout', headers: ben.auth });
    const response = await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ben.auth });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toContain('error="invalid_token"');
  });
});

describe('CORS for the configured origins', () => {
  const preflight = (origin: string, app = browserApp) =>
    app.inject({
      method: 'OPTIONS',
      url: '/v1/commitments',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type, idempotency-key',
      },
    });

  test('a preflight from an allowed origin is answered with what it may send', async () => {
    const response = await preflight(ALLOWED);
    expect(response.statusCode).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(response.headers['access-control-allow-credentials']).toBeUndefined();
    const methods = String(response.headers['access-control-allow-methods']).split(/,\s*/);
    expect(methods).toEqual(expect.arrayContaining(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']));
    const headers = String(response.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/);
    expect(headers).toEqual(
      expect.arrayContaining([
        'authorization',
        'content-type',
        'idempotency-key',
        'if-match',
        'connect-min-index',
      ]),
    );
    expect(String(response.headers.vary)).toMatch(/origin/i);
  });

  test('a preflight from any other origin gets no Access-Control-Allow-Origin', async () => {
    for (const response of [await preflight(REFUSED), await preflight('https://app.example.com.evil.net')]) {
      expect(response.headers['access-control-allow-origin']).toBeUndefined();
      expect(response.headers['access-control-allow-methods']).toBeUndefined();
    }
  });

  test('an actual request from an allowed origin may read Connect-Index and ETag', async () => {
    const response = await browserApp.inject({
      method: 'POST',
      url: '/v1/commitments',
      headers: { ...ana.auth, origin: ALLOWED },
      payload: { type: 'personal', title: 'From the browser' },
    });
    expect(response.statusCode).toBe(201);
    expect(response.headers.etag).toBeDefined();
    expect(response.headers['access-control-allow-origin']).toBe(ALLOWED);
    const exposed = String(response.headers['access-control-expose-headers']).toLowerCase().split(/,\s*/);
    expect(exposed).toEqual(
      expect.arrayContaining(['connect-index', 'etag', 'location', 'retry-after', 'www-authenticate']),
    );
    expect(response.headers['cross-origin-resource-policy']).toBe('cross-origin');
    const refused = await browserApp.inject({ method: 'GET', url: '/healthz', headers: { origin: REFUSED } });
    expect(refused.statusCode).toBe(200);
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();
    expect(refused.headers['access-control-expose-headers']).toBeUndefined();
  });

  test('without configured origins there are no CORS headers at all', async () => {
    const response = await preflight(ALLOWED, t.app);
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
    const get = await t.app.inject({ method: 'GET', url: '/healthz', headers: { origin: ALLOWED } });
    expect(Object.keys(get.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
    expect(get.headers['cross-origin-resource-policy']).toBe('same-origin');
  });
});

describe('security headers', () => {
  test('every answer carries them: JSON, problems, unknown routes', async () => {
    const answers = [
      await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ana.auth }),
      await t.app.inject({ method: 'GET', url: '/v1/auth/me' }),
      await t.app.inject({ method: 'GET', url: '/v1/nothing-here' }),
    ];
    expect(answers.map((response) => response.statusCode)).toEqual([200, 401, 404]);
    for (const response of answers) {
      expect(response.headers['strict-transport-security']).toMatch(/max-age=\d+/);
      expect(response.headers['x-content-type-options']).toBe('nosniff');
      expect(response.headers['x-frame-options']).toBe('DENY');
      expect(response.headers['referrer-policy']).toBe('no-referrer');
      expect(response.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(response.headers['x-powered-by']).toBeUndefined();
    }
  });

  test('the pages served keep working under their policy: scripts and styles from this origin only', async () => {
    for (const url of ['/docs/', '/problems']) {
      const response = await t.app.inject({ method: 'GET', url, headers: { accept: 'text/html' } });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toMatch(/^text\/html/);
      const policy = String(response.headers['content-security-policy']);
      expect(policy).toContain("script-src 'self'");
      expect(policy).toContain("object-src 'none'");
      expect(policy).not.toContain('unsafe-eval');
      // No inline script the policy would block.
      expect(response.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    }
  });
});
