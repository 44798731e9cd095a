import { existsSync } from 'node:fs';
import { openApiDocument, PROBLEM_TYPES } from '@connect/http';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { pageWithItsAssets } from '../../../test/support/assets.ts';
import { documentedRoutes, registeredRoutes } from '../../../test/support/routes.ts';
import { commandRoutes } from '../src/app.ts';
import { grantAdmin } from '../src/auth/roles.ts';
import { commandOperations } from '../src/openapi.ts';
import { signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
beforeAll(async () => {
  t = await testApp();
});
afterAll(() => t.close());

test('the OpenAPI document lists exactly the routes the service registers', async () => {
  const registered = await registeredRoutes((app) => app.register(commandRoutes, t.deps));
  const document = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
  expect(document).toEqual(openApiDocument(commandOperations));
  expect(documentedRoutes(document)).toEqual(registered);
  expect(document.openapi).toBe('3.1.0');
  const create = document.paths['/v1/commitments'].post.requestBody.content['application/json'].schema;
  expect(create.required).toEqual(['type', 'title']);
});

test('/docs is Swagger UI served from this origin, on the same document, keeping the bearer token', async () => {
  for (const url of ['/docs', '/docs/']) {
    const { assets } = await pageWithItsAssets(t.app, url);
    const initializer = assets.find((asset) => asset.path.endsWith('/swagger-initializer.js'));
    expect(initializer?.body).toMatch(/"persistAuthorization":\s*true/);
    expect(initializer?.body).toContain("url: resolveUrl('./json')");
    expect(initializer?.body).not.toMatch(/(url|src|href)\s*[:=]\s*['"]https?:/);
    expect(assets.map((asset) => asset.path)).toEqual(
      expect.arrayContaining(['/docs/static/swagger-ui-bundle.js', '/docs/static/swagger-ui.css']),
    );
  }
  // What the initializer loads ('./json' from /docs/) is the document /openapi.json serves.
  const served = await t.app.inject({ method: 'GET', url: '/docs/json' });
  expect(served.json()).toEqual(openApiDocument(commandOperations));
  const document = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
  expect(document.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  expect(document.paths['/v1/commitments/{id}/accept'].post.security).toEqual([{ bearer: [] }]);
});

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));

test.skipIf(!CHROMIUM)(
  'in a browser, /docs tries an operation with the authorized bearer token, reaching nothing else',
  async () => {
    const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const ana = await signUp(t.app, 'Explorer');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu'],
    });
    try {
      const page = await browser.newPage();
      const elsewhere: string[] = [];
      const authorizations: string[] = [];
      await page.route('**/*', (route) => {
        const request = route.request();
        if (!request.url().startsWith(url)) {
          elsewhere.push(request.url());
          return route.abort();
        }
        if (new URL(request.url()).pathname === '/v1/auth/me') {
          authorizations.push(request.headers().authorization ?? '');
        }
        return route.continue();
      });
      await page.goto(`${url}/docs`);
      await page.click('.btn.authorize', { timeout: 20_000 });
      await page.fill('.auth-container input', ana.token);
      await page.click('.auth-btn-wrapper .btn.authorize');
      await page.click('.btn-done');
      await page.click('#operations-auth-getAuthMe .opblock-summary');
      await page.click('#operations-auth-getAuthMe .try-out__btn');
      await page.click('#operations-auth-getAuthMe .execute');
      await page.waitForSelector('#operations-auth-getAuthMe .live-responses-table .response-col_status');
      expect(authorizations).toEqual([`Bearer ${ana.token}`]);
      expect(await page.textContent('#operations-auth-getAuthMe .live-responses-table')).toContain(ana.email);
      expect(elsewhere).toEqual([]);
    } finally {
      await browser.close();
    }
  },
  60_000,
);

test('every problem type resolves to its description, listed on /docs', async () => {
  const document = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
  for (const type of PROBLEM_TYPES) {
    const uri = `/problems/${type.name}`;
    expect(document.info.description).toContain(`[\`${uri}\`](${uri})`);
    const page = await t.app.inject({ method: 'GET', url: uri });
    expect(page.statusCode, uri).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain(type.title);
    const json = await t.app.inject({ method: 'GET', url: uri, headers: { accept: 'application/json' } });
    expect(json.json()).toMatchObject({ type: uri, status: type.status, title: type.title });
  }
  const index = await t.app.inject({ method: 'GET', url: '/problems' });
  for (const type of PROBLEM_TYPES) expect(index.body).toContain(`href="/problems/${type.name}"`);
  const unknown = await t.app.inject({ method: 'GET', url: '/problems/no-such-thing' });
  expect(unknown.statusCode).toBe(404);
  expect(unknown.json()).toMatchObject({ type: '/problems/not-found', status: 404 });
});

test('errors carry the stable problem type of their kind', async () => {
  const ana = await signUp(t.app, 'Types');
  const noToken = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'No token' },
  });
  expect(noToken.json()).toMatchObject({ type: '/problems/unauthenticated', status: 401 });
  const invalid = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal' },
    headers: ana.auth,
  });
  expect(invalid.json()).toMatchObject({ type: '/problems/invalid-input', status: 400 });
  const created = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'Typed errors' },
    headers: ana.auth,
  });
  const { commitmentId } = created.json();
  const stale = await t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${commitmentId}/update`,
    payload: { title: 'Too late' },
    headers: { ...ana.auth, 'if-match': '"7"' },
  });
  expect(stale.json()).toMatchObject({ type: '/problems/version-conflict', status: 412 });
  const notNow = await t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${commitmentId}/confirm-fulfilment`,
    payload: {},
    headers: ana.auth,
  });
  expect(notNow.statusCode).toBe(409);
  expect(notNow.json().type).toBe('/problems/state-conflict');
  const idempotent = (payload: Record<string, unknown>) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/commitments',
      payload,
      headers: { ...ana.auth, 'idempotency-key': `typed-${commitmentId}` },
    });
  expect((await idempotent({ type: 'personal', title: 'Once' })).statusCode).toBe(201);
  expect((await idempotent({ type: 'personal', title: 'Another' })).json()).toMatchObject({
    type: '/problems/idempotency-key-reused',
    status: 422,
  });
  const wrongPassword = await t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: ana.email, password: 'not the password' },
  });
  expect(wrongPassword.json()).toMatchObject({ type: '/problems/invalid-grant', status: 400 });
  const unknown = await t.app.inject({ method: 'GET', url: '/v1/nothing-here' });
  expect(unknown.json()).toMatchObject({ type: '/problems/not-found', status: 404 });
  // Every type answered is one the catalogue documents.
  const names = new Set(PROBLEM_TYPES.map((type) => `/problems/${type.name}`));
  for (const response of [noToken, invalid, stale, notNow, wrongPassword, unknown]) {
    expect(names.has(response.json().type)).toBe(true);
  }
});

test('an admin defines a commitment type, which is then usable; others may not', async () => {
  const ana = await signUp(t.app, 'Admin');
  const ben = await signUp(t.app, 'NotAdmin');
  const type = { key: 'loan', name: 'Loan', requiresAmount: true, requiresDueDate: true, minWitnesses: 1 };
  expect(
    (await t.app.inject({ method: 'POST', url: '/v1/commitment-types', payload: type, headers: ben.auth }))
      .statusCode,
  ).toBe(403);
  expect(await grantAdmin(t.deps, ana.email)).toBe(true);
  const login = await t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: ana.email, password: 'correct horse battery' },
  });
  const admin = { authorization: `Bearer ${login.json().access_token}` };
  const defined = await t.app.inject({
    method: 'POST',
    url: '/v1/commitment-types',
    payload: type,
    headers: admin,
  });
  expect(defined.statusCode).toBe(201);
  expect(
    (await t.app.inject({ method: 'POST', url: '/v1/commitment-types', payload: type, headers: admin }))
      .statusCode,
  ).toBe(409);
  const created = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'loan', title: 'A loan' },
    headers: ben.auth,
  });
  expect(created.statusCode).toBe(201);
});
