// OpenAPI 3.1 documents generated from the zod schemas the routes validate with, so what is
// documented is what is checked; and a plain /docs page listing the same operations.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

export interface Operation {
  method: 'get' | 'post';
  path: string;
  summary: string;
  body?: z.ZodType;
  multipart?: boolean;
  auth?: boolean;
  /** Query parameters, as the route parses them. */
  query?: z.ZodObject;
  headers?: { name: string; description: string }[];
  /** The schema of a 2xx JSON body. */
  response?: z.ZodType;
  responses: Record<string, string>;
}

const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return rest;
}

function parametersOf(op: Operation): unknown[] {
  const path = [...op.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema: { type: 'string', format: 'uuid' },
  }));
  const query = op.query
    ? Object.entries((jsonSchema(op.query).properties ?? {}) as Record<string, unknown>).map(
        ([name, schema]) => ({
          name,
          in: 'query',
          required: false,
          schema,
        }),
      )
    : [];
  const headers = (op.headers ?? []).map(({ name, description }) => ({
    name,
    in: 'header',
    required: false,
    description,
    schema: { type: 'string' },
  }));
  return [...path, ...query, ...headers];
}

export function openApiDocument(operations: readonly Operation[]) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const parameters = parametersOf(op);
    const responses = Object.fromEntries(
      Object.entries(op.responses).map(([status, description]) => {
        const ok = status.startsWith('2');
        const schema = ok ? op.response : problemSchema;
        const type = ok ? 'application/json' : 'application/problem+json';
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
      title: 'Connect API',
      version: '1',
      description: 'Commitments recorded in a Merkle-verified ledger.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths,
  };
}

const escapeHtml = (text: string) => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** A plain page listing every operation, with its request schema; no script, no CDN. */
export function docsPage(operations: readonly Operation[]): string {
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

/** Serves /openapi.json and /docs for these operations. */
export async function docsRoutes(
  app: FastifyInstance,
  options: { operations: readonly Operation[] },
): Promise<void> {
  const document = openApiDocument(options.operations);
  const page = docsPage(options.operations);
  app.get('/openapi.json', async () => document);
  app.get('/docs', async (_request, reply) => reply.type('text/html; charset=utf-8').send(page));
}
