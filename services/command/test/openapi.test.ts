import { openApiDocument } from '@connect/http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { documentedRoutes, registeredRoutes } from '../../../test/support/routes.ts';
import { commandRoutes } from '../src/app.ts';
import { grantAdmin } from '../src/auth/accounts.ts';
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

test('the docs page lists the operations', async () => {
  const page = await t.app.inject({ method: 'GET', url: '/docs' });
  expect(page.statusCode).toBe(200);
  expect(page.headers['content-type']).toMatch(/text\/html/);
  expect(page.body).toContain('POST /v1/commitments/{id}/accept');
});

test('an admin defines a commitment type, which is then usable; others may not', async () => {
  const ana = await signUp(t.app, 'Admin');
  const ben = await signUp(t.app, 'NotAdmin');
  const type = { key: 'loan', name: 'Loan', requiresAmount: true, requiresDueDate: true, minWitnesses: 1 };
  expect(
    (await t.app.inject({ method: 'POST', url: '/v1/commitment-types', payload: type, headers: ben.auth }))
      .statusCode,
  ).toBe(403);
  expect(await grantAdmin(t.database.db, ana.email)).toBe(true);
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
