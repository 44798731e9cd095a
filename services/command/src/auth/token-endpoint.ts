// POST /v1/auth/token speaks OAuth 2.0 (RFC 6749) as well as JSON: it takes a form-encoded body,
// its answers are never cached (§5.1), and its errors carry `error` and `error_description` (§5.2)
// as extension members of the usual problem+json (RFC 9457 §3.2).
import { badRequest, HttpProblem, type Problem, problem, sendProblem } from '@connect/http';
import type {
  FastifyError,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  RouteShorthandOptions,
} from 'fastify';

/** The routes that take `application/x-www-form-urlencoded`; the others take JSON only. */
const FORM_ROUTES = new Set(['/v1/auth/token']);

/** A form body is small: a grant and its few parameters. */
export const FORM_BODY_LIMIT = 4096;

export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unsupported_grant_type'
  | 'unauthorized_client'
  | 'invalid_scope';

export type OAuthProblem = Problem & { error: OAuthErrorCode; error_description: string };

/** The OAuth error each problem type of the token endpoint means; any other 4xx is invalid_request. */
const OAUTH_ERRORS: Readonly<Record<string, OAuthErrorCode>> = {
  '/problems/invalid-grant': 'invalid_grant',
  '/problems/session-expired': 'invalid_grant',
  '/problems/unauthenticated': 'invalid_client',
};

/** `application/x-www-form-urlencoded` into an object: a parameter sent twice is refused, an empty one is omitted. */
export function parseForm(
  request: FastifyRequest,
  body: string,
  done: (error: Error | null, body?: unknown) => void,
): void {
  if (!FORM_ROUTES.has(request.routeOptions.url ?? '')) {
    done(new HttpProblem(problem(415, 'This operation takes JSON (application/json).')));
    return;
  }
  const fields: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(body)) {
    if (Object.hasOwn(fields, name)) {
      done(badRequest([{ path: `body.${name}`, message: 'must be sent once' }]));
      return;
    }
    if (value !== '') fields[name] = value;
  }
  done(null, fields);
}

/** Token responses, and the errors instead of them, are never stored by a cache (RFC 6749 §5.1). */
export const noStore: onRequestHookHandler = (_request, reply, done) => {
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
  done();
};

/** What the token endpoint's error means in RFC 6749 §5.2 terms, as members of its problem. */
export function oauthProblem(body: Problem, request: FastifyRequest): OAuthProblem {
  const invalidGrantType =
    body.type === '/problems/invalid-input' &&
    typeof request.body === 'object' &&
    request.body !== null &&
    (body.errors ?? []).some((error) => error.path === 'body.grant_type');
  const error = invalidGrantType ? 'unsupported_grant_type' : (OAUTH_ERRORS[body.type] ?? 'invalid_request');
  const fields = (body.errors ?? []).map((field) => `${field.path}: ${field.message}`).join('; ');
  return {
    ...body,
    error,
    error_description: fields === '' ? (body.detail ?? body.title) : fields,
  };
}

/**
 * The token endpoint's error handler: a refusal (4xx but 429) answers with its problem plus the
 * OAuth error; rate limits and failures go on to the server's handler.
 */
export function tokenErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const status = error instanceof HttpProblem ? error.body.status : (error.statusCode ?? 500);
  if (status >= 500 || status === 429) throw error;
  const body = error instanceof HttpProblem ? error.body : problem(status, error.message);
  return sendProblem(reply, oauthProblem(body, request));
}

/** The route options of an endpoint that issues tokens the OAuth way. */
export const tokenEndpoint = {
  onRequest: noStore,
  errorHandler: tokenErrors,
} satisfies RouteShorthandOptions;
