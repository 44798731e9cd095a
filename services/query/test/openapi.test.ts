import { commandOperations, commandRoutes } from '@connect/command';
import { type Operation, openApiDocument, operationIdOf, PROBLEM_TYPES } from '@connect/http';
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

const operations: Operation[] = [...commandOperations, ...queryOperations];
const name = (op: Operation) => `${op.method.toUpperCase()} ${op.path}`;
// The two operations that take no body at all.
// Actions named by their path alone; the unsubscribe POST's body is RFC 8058's fixed form, ignored.
const WITHOUT_BODY = [
  'POST /v1/auth/logout',
  'POST /v1/admin/ledger/audit',
  'POST /v1/admin/webhooks/{id}/test',
  'POST /v1/admin/notifications/dead-letters/{id}/retry',
  'POST /v1/unsubscribe',
  'POST /v1/admin/users/{id}/roles/{role}',
];

type MediaTypes = Record<string, { schema?: Record<string, unknown>; example?: unknown; examples?: object }>;
type DocumentedOperation = {
  operationId: string;
  requestBody?: { content: MediaTypes };
  responses: Record<string, { content?: MediaTypes }>;
};

test('every operation has a request schema when it takes a body and a schema for its 2xx body, with examples', () => {
  const document = openApiDocument(operations);
  const missing: string[] = [];
  for (const op of operations) {
    const documented = document.paths[op.path]?.[op.method] as DocumentedOperation;
    for (const [status, response] of Object.entries(documented.responses)) {
      if (!/^2/.test(status) || status === '204') continue;
      const [media] = Object.values(response.content ?? {});
      if (!media?.schema || Object.keys(media.schema).length === 0)
        missing.push(`${name(op)} ${status} schema`);
      const bytes = 'application/octet-stream' in (response.content ?? {});
      if (media?.example === undefined && !bytes) missing.push(`${name(op)} ${status} example`);
    }
    if (op.method === 'post' && !WITHOUT_BODY.includes(name(op))) {
      const [media] = Object.values(documented.requestBody?.content ?? {});
      if (!media?.schema) missing.push(`${name(op)} request schema`);
      if (op.body && media?.example === undefined) missing.push(`${name(op)} request example`);
    }
  }
  expect(missing).toEqual([]);
  const ids = operations.map(operationIdOf);
  expect(new Set(ids).size).toBe(ids.length);
});

test('each example is valid for the schema it illustrates', () => {
  for (const op of operations) {
    if (op.examples?.request !== undefined) {
      const parsed = op.body?.safeParse(op.examples.request);
      expect(parsed?.success, `${name(op)} request: ${parsed?.error?.message}`).toBe(true);
    }
    if (op.examples?.response !== undefined) {
      const parsed = op.response?.safeParse(op.examples.response);
      expect(parsed?.success, `${name(op)} response: ${parsed?.error?.message}`).toBe(true);
    }
  }
});

test('POST /v1/ledger/verify documents its three kinds of body', () => {
  const document = openApiDocument(operations);
  const verify = document.paths['/v1/ledger/verify']?.post as DocumentedOperation;
  const schema = verify.requestBody?.content['application/json']?.schema as {
    anyOf: { required: string[] }[];
  };
  expect(schema.anyOf.map((kind) => kind.required)).toEqual([
    ['receipt'],
    ['entry', 'proof', 'checkpoint'],
    ['from', 'to', 'proof'],
  ]);
});

test('error responses are problem+json with a documented problem type', () => {
  const document = openApiDocument(operations);
  expect(document.components.schemas.Problem).toMatchObject({
    type: 'object',
    required: ['type', 'title', 'status'],
  });
  const known = new Set(PROBLEM_TYPES.map((type) => `/problems/${type.name}`));
  const conflict = document.paths['/v1/commitments/{id}/accept']?.post as DocumentedOperation;
  const examples = conflict.responses['409']?.content?.['application/problem+json']?.examples as Record<
    string,
    { value: { type: string } }
  >;
  expect(Object.keys(examples)).toEqual(
    expect.arrayContaining(['state-conflict', 'idempotency-key-in-flight']),
  );
  expect(conflict.responses['412']?.content?.['application/problem+json']?.examples).toHaveProperty(
    'version-conflict',
  );
  for (const op of operations) {
    const documented = document.paths[op.path]?.[op.method] as DocumentedOperation;
    for (const [status, response] of Object.entries(documented.responses)) {
      if (Number(status) < 400) continue;
      const media = response.content?.['application/problem+json'];
      expect(media?.schema, `${name(op)} ${status}`).toEqual({ $ref: '#/components/schemas/Problem' });
      for (const example of Object.values(media?.examples ?? {}) as {
        value: { type: string; status: number };
      }[]) {
        expect(known.has(example.value.type)).toBe(true);
        expect(example.value.status).toBe(Number(status));
      }
    }
  }
});
