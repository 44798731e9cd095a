// The OpenAPI 3.1 document of the command API, generated from the zod schemas the routes
// validate with, so what is documented is what is checked.
import { commandBodies, commitmentTypeSchema } from '@connect/domain';
import { z } from 'zod';
import { signupBody, tokenBody } from './auth/routes.ts';
import { inviteBody, JSON_ACTIONS } from './commitments/routes.ts';

interface Operation {
  method: 'get' | 'post';
  path: string;
  summary: string;
  body?: z.ZodType;
  multipart?: boolean;
  auth?: boolean;
  responses: Record<string, string>;
}

const receipt = z.object({
  commitmentId: z.uuid(),
  version: z.number().int(),
  events: z.array(
    z.object({ index: z.number().int(), id: z.uuid(), type: z.string(), leafHash: z.string() }),
  ),
});
const tokenResponse = z.object({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int(),
  refresh_token: z.string(),
  user: z.object({ id: z.uuid(), email: z.email(), displayName: z.string(), isAdmin: z.boolean() }),
});
const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

const commandErrors = {
  '400': 'Invalid input; `errors` names each field',
  '401': 'No or bad access token',
  '403': 'Not yours to do',
  '404': 'No such commitment, or not visible to you',
  '409': 'Not allowed in the current state (the reason says why), or an Idempotency-Key still in flight',
  '412': 'If-Match is stale',
  '422': 'Idempotency-Key reused with another request',
};

export const operations: Operation[] = [
  {
    method: 'post',
    path: '/v1/auth/signup',
    summary: 'Create an account',
    body: signupBody,
    responses: { '201': 'Tokens', '400': 'Invalid input', '409': 'Email taken', '429': 'Too many attempts' },
  },
  {
    method: 'post',
    path: '/v1/auth/token',
    summary: 'Log in (password) or refresh (refresh_token)',
    body: tokenBody,
    responses: { '200': 'Tokens', '400': 'Wrong credentials or refresh token', '429': 'Too many attempts' },
  },
  {
    method: 'post',
    path: '/v1/auth/logout',
    summary: 'End the session; its tokens stop working at once',
    auth: true,
    responses: { '204': 'Logged out', '401': 'No or bad access token' },
  },
  {
    method: 'get',
    path: '/v1/auth/me',
    summary: 'The caller',
    auth: true,
    responses: { '200': 'The user', '401': 'No or bad access token' },
  },
  {
    method: 'get',
    path: '/.well-known/jwks.json',
    summary: 'Public keys of access tokens',
    responses: { '200': 'JWKS' },
  },
  {
    method: 'post',
    path: '/v1/commitments',
    summary: 'Create a commitment (a draft; the caller is its creator)',
    body: commandBodies.create,
    auth: true,
    responses: { '201': 'Receipt', ...commandErrors },
  },
  {
    method: 'post',
    path: '/v1/commitments/{id}/invite',
    summary: 'Invite a party by user id or email',
    body: inviteBody,
    auth: true,
    responses: { '200': 'Receipt', ...commandErrors },
  },
  ...JSON_ACTIONS.map(
    (action): Operation => ({
      method: 'post',
      path: `/v1/commitments/{id}/${action}`,
      summary: `Command: ${action.replaceAll('-', ' ')}`,
      body: commandBodies[action],
      auth: true,
      responses: { '200': 'Receipt', ...commandErrors },
    }),
  ),
  {
    method: 'post',
    path: '/v1/commitments/{id}/documents',
    summary: 'Upload a document (multipart: file, name); the same name adds a version',
    multipart: true,
    auth: true,
    responses: { '201': 'Receipt', '413': 'Too large', ...commandErrors },
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}/documents/{documentId}/content',
    summary: 'Download a document version (latest without ?version=)',
    auth: true,
    responses: {
      '200': 'The bytes',
      '401': 'No or bad access token',
      '404': 'No such document, version or commitment',
    },
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}/receipt',
    summary:
      'The receipt bundle: checkpoint, key, every event with its inclusion proof, the state (parties only)',
    auth: true,
    responses: {
      '200': 'Receipt bundle (LEDGER.md)',
      '401': 'No or bad access token',
      '404': 'No such commitment, or not visible to you',
    },
  },
  {
    method: 'post',
    path: '/v1/commitment-types',
    summary: 'Define a commitment type (admins)',
    body: commitmentTypeSchema,
    auth: true,
    responses: { '201': 'Defined', '403': 'Not an admin', '409': 'Exists' },
  },
];

function jsonSchema(schema: z.ZodType): unknown {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return rest;
}

export function openApiDocument() {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const parameters = [...op.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string', format: 'uuid' },
    }));
    if (op.path.startsWith('/v1/commitments/') && op.method === 'post') {
      parameters.push(
        {
          name: 'If-Match',
          in: 'header',
          required: false,
          schema: { type: 'string', format: '"<version>"' },
        } as never,
        {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          schema: { type: 'string', format: '1-255 printable ASCII' },
        } as never,
      );
    }
    const responses = Object.fromEntries(
      Object.entries(op.responses).map(([status, description]) => {
        const schema = status.startsWith('2')
          ? op.path.startsWith('/v1/auth/') && status !== '204'
            ? tokenResponse
            : op.method === 'post' && op.path.startsWith('/v1/commitments')
              ? receipt
              : undefined
          : problemSchema;
        const type = status.startsWith('2') ? 'application/json' : 'application/problem+json';
        return [
          status,
          schema ? { description, content: { [type]: { schema: jsonSchema(schema) } } } : { description },
        ];
      }),
    );
    paths[op.path] ??= {};
    (paths[op.path] as Record<string, unknown>)[op.method] = {
      summary: op.summary,
      ...(parameters.length ? { parameters } : {}),
      ...(op.auth ? { security: [{ bearer: [] }] } : {}),
      ...(op.body
        ? {
            requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(op.body) } } },
          }
        : {}),
      ...(op.multipart
        ? {
            requestBody: {
              required: true,
              content: {
                'multipart/form-data': {
                  schema: {
                    type: 'object',
                    properties: { file: { type: 'string', format: 'binary' }, name: { type: 'string' } },
                    required: ['file'],
                  },
                },
              },
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Connect command API',
      version: '1',
      description: 'Commitments recorded in a Merkle-verified ledger.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths,
  };
}

const escapeHtml = (text: string) => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** A plain page listing every operation, with its request schema; no script, no CDN. */
export function docsPage(): string {
  const rows = operations
    .map(
      (
        op,
      ) => `<section><h2><code>${op.method.toUpperCase()} ${escapeHtml(op.path)}</code></h2><p>${escapeHtml(op.summary)}${op.auth ? ' · needs a bearer token' : ''}</p>
${op.body ? `<details><summary>request body</summary><pre>${escapeHtml(JSON.stringify(jsonSchema(op.body), null, 2))}</pre></details>` : ''}
<p>${Object.entries(op.responses)
        .map(([s, d]) => `<b>${s}</b> ${escapeHtml(d)}`)
        .join(' · ')}</p></section>`,
    )
    .join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Connect API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}h2{font-size:1rem;margin-bottom:0}pre{background:#f4f4f4;padding:.5rem;overflow:auto}section{border-top:1px solid #ddd}</style>
</head><body><h1>Connect API</h1><p>The machine-readable document is <a href="/openapi.json">/openapi.json</a>. Errors are RFC 9457 <code>application/problem+json</code>.</p>
${rows}</body></html>`;
}
