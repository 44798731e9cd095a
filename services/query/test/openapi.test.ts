import { commandOperations, commandRoutes } from '@connect/command';
import { createServer, openApiDocument } from '@connect/http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { queryRoutes } from '../src/app.ts';
import { queryOperations } from '../src/openapi.ts';

let s: Stack;
beforeAll(async () => {
  s = await testStack();
});
afterAll(() => s.close());

const documentedRoutes = (document: { paths: Record<string, Record<string, unknown>> }) =>
  Object.entries(document.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
  );

test('one OpenAPI document lists exactly the command and query routes', async () => {
  const registered: string[] = [];
  const app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD' && (route.url.startsWith('/v1/') || route.url.startsWith('/.well-known/'))) {
        registered.push(`${method} ${route.url.replace(/:(\w+)/g, '{$1}')}`);
      }
    }
  });
  app.register(commandRoutes, s.command);
  app.register(queryRoutes, s.query);
  await app.ready();
  const document = openApiDocument([...commandOperations, ...queryOperations]);
  expect(documentedRoutes(document).sort()).toEqual(registered.sort());
  const list = document.paths['/v1/commitments']?.get as { parameters: { name: string; in: string }[] };
  expect(list.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(
    expect.arrayContaining(['query:status', 'query:cursor', 'query:dueBefore', 'header:Connect-Min-Index']),
  );
  await app.close();
});
