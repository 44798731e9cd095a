// OpenAPI 3.1 documents generated from the zod schemas the routes validate with, so what is
// documented is what is checked; /docs shows them in Swagger UI (served from node_modules, so it
// works offline), and /problems/<name> describes each problem type.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import {
  defaultProblemName,
  HttpProblem,
  PROBLEM_TYPES,
  type ProblemName,
  type ProblemType,
  problem,
  problemType,
  problemUri,
} from './problem.ts';

export interface Operation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  path: string;
  summary: string;
  /** Defaults to the method and the path's words, e.g. `getCommitmentsByIdHistory`. */
  operationId?: string;
  body?: z.ZodType;
  multipart?: boolean;
  auth?: boolean;
  /** Query parameters, as the route parses them. */
  query?: z.ZodObject;
  headers?: { name: string; description: string }[];
  /** The schema of a 2xx body. */
  response?: z.ZodType;
  /** The media type of a 2xx body; JSON unless said. */
  responseType?: string;
  responses: Record<string, string>;
  /** Problem types this operation answers with beyond each error status's default one. */
  problems?: ProblemName[];
  /** A request body and a 2xx body, as a client would send and get them. */
  examples?: { request?: unknown; response?: unknown };
}

const problemSchema = z
  .object({
    type: z.string().meta({
      format: 'uri-reference',
      description: 'A stable URI `/problems/<name>` naming the kind of error (see /problems): branch on it.',
    }),
    title: z.string().meta({ description: 'A short summary of the type, for people.' }),
    status: z.number().int(),
    detail: z.string().optional().meta({ description: 'What went wrong this time, for people.' }),
    errors: z
      .array(
        z.object({
          path: z
            .string()
            .meta({ description: 'body.<json path>, query.<name>, path.<name> or header.<name>' }),
          message: z.string(),
        }),
      )
      .optional()
      .meta({ description: 'Each invalid value (400 /problems/invalid-input).' }),
    rule: z
      .string()
      .optional()
      .meta({ description: 'The policy rule that refused it, e.g. `createdBy: verified` (403).' }),
  })
  .meta({ description: 'RFC 9457 problem details (application/problem+json).' });

function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return rest;
}

function parametersOf(op: Operation): unknown[] {
  const path = [...op.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema:
      name === 'index'
        ? { type: 'integer', minimum: 0 }
        : name === 'provider'
          ? { type: 'string', pattern: '^[a-z][a-z0-9]*$' }
          : { type: 'string', format: 'uuid' },
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

const words = (path: string) =>
  path
    .split('/')
    .filter((part) => part && part !== 'v1' && part !== '.well-known')
    .map((part) => part.replace(/^\{(\w+)\}$/, 'by-$1'))
    .flatMap((part) => part.split(/[-.]/))
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1));

export const operationIdOf = (op: Operation): string =>
  op.operationId ?? `${op.method}${words(op.path).join('')}`;

/** The group an operation is listed under on /docs. */
function tagOf(path: string): string {
  if (path.startsWith('/v1/auth') || path.startsWith('/.well-known') || path.startsWith('/v1/me/identities'))
    return 'auth';
  if (path.startsWith('/v1/admin')) return 'admin';
  if (path.startsWith('/v1/ledger') || path.endsWith('/receipt')) return 'ledger';
  if (path.startsWith('/v1/commitment-types')) return 'commitment types';
  if (path.startsWith('/v1/me/notification') || path.startsWith('/v1/unsubscribe')) return 'notifications';
  if (path.includes('/documents')) return 'documents';
  return 'commitments';
}

const problemExample = (type: ProblemType) => ({
  summary: type.title,
  value: { type: problemUri(type.name), title: type.title, status: type.status, detail: '…' },
});

function errorResponse(op: Operation, status: string, description: string) {
  const code = Number(status);
  const names = new Set<string>([
    defaultProblemName(code),
    ...(op.problems ?? []).filter((name) => problemType(name)?.status === code),
  ]);
  const types = [...names].map((name) => problemType(name)).filter((type) => type !== undefined);
  return {
    description: `${description} (${types.map((type) => `\`${problemUri(type.name)}\``).join(', ')})`,
    content: {
      'application/problem+json': {
        schema: { $ref: '#/components/schemas/Problem' },
        examples: Object.fromEntries(types.map((type) => [type.name, problemExample(type)])),
      },
    },
  };
}

function okResponse(op: Operation, status: string, description: string) {
  if (!op.response || !status.startsWith('2') || status === '204') return { description };
  const type = op.responseType ?? 'application/json';
  return {
    description,
    content: {
      [type]: {
        schema: jsonSchema(op.response, 'output'),
        ...(op.examples?.response === undefined ? {} : { example: op.examples.response }),
      },
    },
  };
}

function requestBodyOf(op: Operation) {
  if (op.body) {
    return {
      required: true,
      content: {
        'application/json': {
          schema: jsonSchema(op.body),
          ...(op.examples?.request === undefined ? {} : { example: op.examples.request }),
        },
      },
    };
  }
  if (op.multipart) {
    return {
      required: true,
      content: {
        'multipart/form-data': {
          schema: {
            type: 'object',
            properties: {
              file: { type: 'string', format: 'binary', description: 'the document' },
              name: { type: 'string', description: 'its name; the file name when absent' },
            },
            required: ['file'],
          },
        },
      },
    };
  }
  return undefined;
}

function problemTable(): string {
  return PROBLEM_TYPES.map(
    (type) =>
      `| [\`${problemUri(type.name)}\`](${problemUri(type.name)}) | ${type.status} | ${type.title}: ${type.description} |`,
  ).join('\n');
}

const DESCRIPTION = `Commitments recorded in a Merkle-verified ledger.

**Authentication.** Get tokens from \`POST /v1/auth/signup\` or \`POST /v1/auth/token\`, then send
\`Authorization: Bearer <access_token>\`. Here, press **Authorize** and paste the access token: every
“Try it out” request then carries it (kept across reloads in this browser).

**Errors** are RFC 9457 \`application/problem+json\`. Their \`type\` is one of the stable URIs below;
branch on it, and show \`title\` and \`detail\` to people. Each URI resolves to its description.

| type | status | meaning |
| --- | --- | --- |
${problemTable()}
`;

export function openApiDocument(operations: readonly Operation[]) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const parameters = parametersOf(op);
    const responses = Object.fromEntries(
      Object.entries(op.responses).map(([status, description]) => [
        status,
        Number(status) >= 400 ? errorResponse(op, status, description) : okResponse(op, status, description),
      ]),
    );
    const requestBody = requestBodyOf(op);
    paths[op.path] ??= {};
    (paths[op.path] as Record<string, unknown>)[op.method] = {
      operationId: operationIdOf(op),
      summary: op.summary,
      tags: [tagOf(op.path)],
      ...(parameters.length ? { parameters } : {}),
      ...(op.auth ? { security: [{ bearer: [] }] } : {}),
      ...(requestBody ? { requestBody } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0' as const,
    info: { title: 'Connect API', version: '1', description: DESCRIPTION },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http' as const,
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'The access_token of POST /v1/auth/token or /v1/auth/signup.',
        },
      },
      schemas: { Problem: jsonSchema(problemSchema, 'output') },
    },
    paths,
  };
}

const escapeHtml = (text: string) => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

const markdownCode = (text: string) => escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>');

function problemPage(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}dt{font-weight:600;margin-top:1rem}code{background:#f4f4f4;padding:0 .2rem}</style>
</head><body>${body}<p>All operations: <a href="/docs">/docs</a> · <a href="/openapi.json">/openapi.json</a></p></body></html>`;
}

function describeProblem(type: ProblemType): string {
  const uri = problemUri(type.name);
  return `<dt id="${type.name}"><a href="${uri}"><code>${uri}</code></a> · ${type.status} ${escapeHtml(type.title)}</dt><dd>${markdownCode(type.description)}</dd>`;
}

const wantsJson = (accept: string | undefined) =>
  accept !== undefined && /application\/(problem\+)?json/.test(accept) && !accept.includes('text/html');

/** Serves /openapi.json, the Swagger UI at /docs, and a description at each /problems/<name>. */
export async function docsRoutes(
  app: FastifyInstance,
  options: { operations: readonly Operation[] },
): Promise<void> {
  const document = openApiDocument(options.operations);
  app.get('/openapi.json', async () => document);

  await app.register(swagger, { mode: 'static', specification: { document } });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    theme: { title: 'Connect API' },
    uiConfig: {
      deepLinking: true,
      docExpansion: 'list',
      filter: true,
      persistAuthorization: true,
      displayRequestDuration: true,
    },
  });

  app.get('/problems', async (request, reply) => {
    if (wantsJson(request.headers.accept)) return PROBLEM_TYPES;
    return reply
      .type('text/html; charset=utf-8')
      .send(
        problemPage(
          'Connect problem types',
          `<h1>Problem types</h1><p>Every error is RFC 9457 <code>application/problem+json</code> with one of these <code>type</code> URIs.</p><dl>${PROBLEM_TYPES.map(describeProblem).join('')}</dl>`,
        ),
      );
  });
  app.get('/problems/:name', async (request, reply) => {
    const { name } = request.params as { name: string };
    const type = problemType(name);
    if (!type) throw new HttpProblem(problem(404, `No problem type ${name}; see /problems.`));
    if (wantsJson(request.headers.accept)) return { ...type, type: problemUri(type.name) };
    return reply
      .type('text/html; charset=utf-8')
      .send(
        problemPage(
          type.title,
          `<h1>${escapeHtml(type.title)}</h1><dl>${describeProblem(type)}</dl><p><a href="/problems">Every problem type</a></p>`,
        ),
      );
  });
}
