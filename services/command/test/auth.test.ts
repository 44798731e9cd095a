import { readEntries, readStream } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
beforeAll(async () => {
  t = await testApp();
});
afterAll(() => t.close());

describe('signup and login', () => {
  test('signup answers with tokens and writes only the profile to the ledger', async () => {
    const ana = await signUp(t.app, 'Ana');
    const me = await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ana.auth });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({ id: ana.userId, email: ana.email, displayName: 'Ana', isAdmin: false });
    const profile = await readStream(t.database.db, t.deps.ledger, `profile-${ana.userId}`);
    expect(profile.map((e) => [e.type, e.data])).toEqual([
      ['ProfileRegistered', { userId: ana.userId, displayName: 'Ana' }],
    ]);
    const bodies = (await readEntries(t.database.db, t.deps.ledger, 0, 1_000_000)).map((e) =>
      JSON.stringify(e.data),
    );
    expect(bodies.filter((body) => body.includes(ana.email) || body.includes('correct horse'))).toEqual([]);
    const stored = await t.database.pool.query('select password_hash from users where id = $1', [ana.userId]);
    expect(stored.rows[0].password_hash).toMatch(/^scrypt\$131072\$8\$1\$/);
  });

  test('the same email twice is a 409, bad fields a 400 naming them', async () => {
    const ana = await signUp(t.app, 'Twice');
    const again = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: ana.email.toUpperCase(), password: 'another password', displayName: 'Ana' },
    });
    expect(again.statusCode).toBe(409);
    const bad = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: 'nope', password: 'short', displayName: '' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(
      bad
        .json()
        .errors.map((e: { path: string }) => e.path)
        .sort(),
    ).toEqual(['body.displayName', 'body.email', 'body.password']);
  });

  test('password login works, a wrong password does not, and neither says which part was wrong', async () => {
    const ben = await signUp(t.app, 'Ben');
    const ok = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', email: ben.email, password: 'correct horse battery' },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ token_type: 'Bearer', expires_in: 900, user: { id: ben.userId } });
    const wrong = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', email: ben.email, password: 'wrong horse battery' },
    });
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', email: 'nobody@example.test', password: 'wrong horse battery' },
    });
    expect(wrong.statusCode).toBe(400);
    expect(unknown.json().detail).toBe(wrong.json().detail);
    expect(wrong.body).not.toContain('wrong horse');
  });

  test('no token, a bad token, or a forged token is a 401', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/v1/auth/me' })).statusCode).toBe(401);
    expect(
      (await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: { authorization: 'Bearer abc' } }))
        .statusCode,
    ).toBe(401);
    const ana = await signUp(t.app, 'Forger');
    const [header, payload, signature] = ana.token.split('.');
    const claims = JSON.parse(Buffer.from(payload as string, 'base64url').toString());
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, adm: true })).toString('base64url')}.${signature}`;
    expect(
      (
        await t.app.inject({
          method: 'GET',
          url: '/v1/auth/me',
          headers: { authorization: `Bearer ${forged}` },
        })
      ).statusCode,
    ).toBe(401);
  });

  test('JWKS publishes the public key only', async () => {
    const jwks = (await t.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwks.keys[0].d).toBeUndefined();
  });
});

describe('refresh and logout', () => {
  const refresh = (token: string) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'refresh_token', refresh_token: token },
    });

  test('a refresh token rotates on use', async () => {
    const ana = await signUp(t.app, 'Rotator');
    const first = await refresh(ana.refreshToken);
    expect(first.statusCode).toBe(200);
    const next = first.json().refresh_token as string;
    expect(next).not.toBe(ana.refreshToken);
    expect((await refresh(next)).statusCode).toBe(200);
  });

  test('two tabs refreshing with one token together both succeed (grace window)', async () => {
    const ana = await signUp(t.app, 'Tabs');
    const [a, b] = await Promise.all([refresh(ana.refreshToken), refresh(ana.refreshToken)]);
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
  });

  test('reusing an old refresh token after the grace window revokes the whole session', async () => {
    const ana = await signUp(t.app, 'Reuser');
    const rotated = (await refresh(ana.refreshToken)).json();
    await t.database.pool.query(
      `update refresh_tokens set used_at = used_at - interval '11 seconds' where used_at is not null`,
    );
    const reuse = await refresh(ana.refreshToken);
    expect(reuse.statusCode).toBe(400);
    expect(reuse.json().detail).toMatch(/session is ended/);
    // Every token of that session stops working: the newest refresh token and the access tokens.
    expect((await refresh(rotated.refresh_token)).statusCode).toBe(400);
    const me = await t.app.inject({
      method: 'GET',
      url: '/v1/auth/me',
      headers: { authorization: `Bearer ${rotated.access_token}` },
    });
    expect(me.statusCode).toBe(401);
  });

  test('logout ends the session at once: its access token fails on the next request', async () => {
    const ana = await signUp(t.app, 'Leaver');
    expect((await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ana.auth })).statusCode).toBe(
      200,
    );
    expect(
      (await t.app.inject({ method: 'POST', url: '/v1/auth/logout', headers: ana.auth })).statusCode,
    ).toBe(204);
    expect((await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ana.auth })).statusCode).toBe(
      401,
    );
    expect((await refresh(ana.refreshToken)).statusCode).toBe(400);
  });
});

test('login and signup are rate limited per client', async () => {
  const limited = await testApp({ authAttemptsPerMinute: 3 });
  try {
    const attempt = () =>
      limited.app.inject({
        method: 'POST',
        url: '/v1/auth/token',
        payload: { grant_type: 'password', email: 'x@example.test', password: 'x' },
      });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await attempt()).statusCode);
    expect(statuses).toEqual([400, 400, 400, 429, 429]);
  } finally {
    await limited.close();
  }
});

test('a logout through one instance ends the session in another at once (NOTIFY), even after it was remembered there', async () => {
  const other = buildApp(t.deps, { logLevel: 'silent' });
  await other.ready();
  try {
    const ana = await signUp(t.app, 'TwoInstances');
    // Both instances have seen the session open.
    await expect
      .poll(
        async () => (await other.inject({ method: 'GET', url: '/v1/auth/me', headers: ana.auth })).statusCode,
      )
      .toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/v1/auth/me', headers: ana.auth })).statusCode).toBe(
      200,
    );
    expect(
      (await t.app.inject({ method: 'POST', url: '/v1/auth/logout', headers: ana.auth })).statusCode,
    ).toBe(204);
    await expect
      .poll(
        async () => (await other.inject({ method: 'GET', url: '/v1/auth/me', headers: ana.auth })).statusCode,
        { timeout: 1000, interval: 20 },
      )
      .toBe(401);
  } finally {
    await other.close();
  }
});
