import { commandOperations, commandRoutes } from '@connect/command';
import { openApiDocument } from '@connect/http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { documentedRoutes, registeredRoutes } from '../../../test/support/routes.ts';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { queryRoutes } from '../src/app.ts';
import { queryOperations } from '../src/openapi.ts';

let s: Stack;
beforeAll(async () => {
  s = await testStack();
});
afterAll(() => s.close());

test('one OpenAPI document lists exactly the command and query routes', async () => {
  const registered = await registeredRoutes((app) => {
    app.register(commandRoutes, s.command);
    app.register(queryRoutes, s.query);
  });
  const document = openApiDocument([...commandOperations, ...queryOperations]);
  expect(documentedRoutes(document)).toEqual(registered);
  const list = document.paths['/v1/commitments']?.get as { parameters: { name: string; in: string }[] };
  expect(list.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(
    expect.arrayContaining(['query:status', 'query:cursor', 'query:dueBefore', 'header:Connect-Min-Index']),
  );
});
