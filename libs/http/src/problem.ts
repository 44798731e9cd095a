// RFC 9457 problem details: every error this service answers with has this shape, and its `type`
// is one of the stable URIs below, so clients branch on the type and show `title` and `detail`.
import type { FastifyReply } from 'fastify';

export interface FieldError {
  /** Where the bad value is: a JSON path in the body, or a query or header name. */
  path: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
  /** The policy rule that refused the request, when one did (e.g. `createdBy: verified`). */
  rule?: string;
}

export interface ProblemType {
  /** The kebab-case name; the type URI is `/problems/<name>`. */
  name: string;
  status: number;
  title: string;
  /** What it means and what a client does about it. */
  description: string;
}

const problemTypes = [
  {
    name: 'invalid-input',
    status: 400,
    title: 'Invalid input',
    description:
      'The body, a query parameter, a path parameter or a header is malformed or out of range. `errors` names each bad value by path (`body.title`, `query.cursor`, `header.if-match`); fix those and send again.',
  },
  {
    name: 'invalid-grant',
    status: 400,
    title: 'Invalid grant',
    description:
      'POST /v1/auth/token: the email or the password is wrong, or the refresh token is unknown, expired or already used (reusing one ends its session). Ask the person to log in again. Like every error of this endpoint it also carries the RFC 6749 members `error` (here `invalid_grant`) and `error_description`.',
  },
  {
    name: 'unauthenticated',
    status: 401,
    title: 'Unauthenticated',
    description:
      'No access token, or one that is malformed, expired or revoked (logged out). Refresh the token or log in, then send `Authorization: Bearer <access token>`.',
  },
  {
    name: 'session-expired',
    status: 400,
    title: 'Session expired',
    description:
      'POST /v1/auth/token: the session lasted longer than it may, or was idle too long (CONNECT_SESSION_IDLE_TIMEOUT, CONNECT_SESSION_MAX_LIFETIME): its refresh token is refused (OAuth `error`: `invalid_grant`) and its access tokens stop working. Log in again.',
  },
  {
    name: 'forbidden',
    status: 403,
    title: 'Forbidden',
    description:
      'The caller is known but may not do this: for example a command only the creator may give, or an operation for admins. `detail` says who may.',
  },
  {
    name: 'not-found',
    status: 404,
    title: 'Not found',
    description:
      'No such resource, or one the caller may not see (a commitment is visible to its parties only; the answer does not tell which).',
  },
  {
    name: 'method-not-allowed',
    status: 405,
    title: 'Method not allowed',
    description: 'The path exists but not with this HTTP method.',
  },
  {
    name: 'not-acceptable',
    status: 406,
    title: 'Not acceptable',
    description: 'The service cannot answer in a media type the Accept header allows.',
  },
  {
    name: 'request-timeout',
    status: 408,
    title: 'Request timeout',
    description: 'The request, or its body, did not arrive in time; the connection is closed. Send it again.',
  },
  {
    name: 'state-conflict',
    status: 409,
    title: 'Not allowed in the current state',
    description:
      'The command is not allowed in the commitment’s current state (e.g. accepting a draft); `detail` gives the reason a person can act on. Reload the commitment before trying something else.',
  },
  {
    name: 'already-exists',
    status: 409,
    title: 'Already exists',
    description:
      'What the request would create exists already: an account with this email, a commitment type with this key.',
  },
  {
    name: 'idempotency-key-in-flight',
    status: 409,
    title: 'Idempotency-Key in flight',
    description:
      'A request with the same Idempotency-Key is still being processed. Retry later with the same key and body: the retry replays the first response.',
  },
  {
    name: 'busy',
    status: 409,
    title: 'Busy',
    description:
      'The service cannot do this right now (a ledger audit is already running, a commitment changes too fast for the command to apply). Try again shortly.',
  },
  {
    name: 'version-conflict',
    status: 412,
    title: 'Version conflict',
    description:
      'If-Match named a version the commitment has moved on from. Reload it (its ETag is the version), check the change still makes sense, and send the command with the new version.',
  },
  {
    name: 'too-large',
    status: 413,
    title: 'Too large',
    description:
      'The body, an uploaded document or the form around it is larger than allowed; `detail` gives the limit.',
  },
  {
    name: 'unsupported-media-type',
    status: 415,
    title: 'Unsupported media type',
    description:
      'The Content-Type is not one this operation takes: JSON (`application/json`), or `multipart/form-data` for document uploads.',
  },
  {
    name: 'idempotency-key-reused',
    status: 422,
    title: 'Idempotency-Key reused',
    description:
      'The Idempotency-Key was used before with another request (another body or path). Use a new key for a new request.',
  },
  {
    name: 'idempotency-response-erased',
    status: 410,
    title: 'Idempotency-Key response erased',
    description:
      'The request with this Idempotency-Key was done, but its response is no longer kept: it held personal data of the caller, which was erased. Do not assume the request failed; use a new key to do it again.',
  },
  {
    name: 'rate-limited',
    status: 429,
    title: 'Rate limited',
    description:
      'Too many attempts in a short time. Wait the seconds the Retry-After header says, then retry.',
  },
  {
    name: 'request-refused',
    status: 400,
    title: 'Request refused',
    description:
      'The request was refused before it reached an operation for a reason no other type names; `status` and `detail` say more.',
  },
  {
    name: 'internal-error',
    status: 500,
    title: 'Internal error',
    description:
      'Something went wrong on the service’s side; the details are in its log, not in the answer. Try again; report it if it persists.',
  },
  {
    name: 'upstream-unavailable',
    status: 502,
    title: 'Upstream unavailable',
    description:
      'A service Connect depends on for this request (an identity provider) did not answer or answered wrongly. Try again later.',
  },
  {
    name: 'not-ready',
    status: 503,
    title: 'Not ready',
    description:
      'The service cannot serve now: the database is unreachable or not migrated, this instance is shutting down (the answer closes the connection; another instance takes the retry), a read asked with Connect-Min-Index to wait for a ledger index the read models did not reach in time, or a read ran past its time limit (the database held it up). Retry after the Retry-After header’s seconds.',
  },
] as const satisfies readonly ProblemType[];

export type ProblemName = (typeof problemTypes)[number]['name'];

/** Every problem type this service answers with, by name. */
export const PROBLEM_TYPES: readonly ProblemType[] = problemTypes;

export const problemUri = (name: string): string => `/problems/${name}`;

export function problemType(name: string): ProblemType | undefined {
  return PROBLEM_TYPES.find((type) => type.name === name);
}

const BY_STATUS: Record<number, ProblemName> = {
  400: 'invalid-input',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not-found',
  405: 'method-not-allowed',
  406: 'not-acceptable',
  408: 'request-timeout',
  409: 'state-conflict',
  410: 'idempotency-response-erased',
  412: 'version-conflict',
  413: 'too-large',
  415: 'unsupported-media-type',
  422: 'idempotency-key-reused',
  429: 'rate-limited',
  500: 'internal-error',
  502: 'upstream-unavailable',
  503: 'not-ready',
};

/** The type a status gets when its call site names none. */
export function defaultProblemName(status: number): ProblemName {
  return BY_STATUS[status] ?? (status >= 500 ? 'internal-error' : 'request-refused');
}

/** A problem; its type is the status's default unless the call site names a more specific one. */
export function problem(
  status: number,
  detail?: string,
  errors?: FieldError[],
  type: ProblemName = defaultProblemName(status),
): Problem {
  return {
    type: problemUri(type),
    title: problemType(type)?.title ?? 'Error',
    status,
    ...(detail === undefined ? {} : { detail }),
    ...(errors === undefined ? {} : { errors }),
  };
}

export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  if (body.status === 401 && !reply.hasHeader('www-authenticate')) {
    reply.header('www-authenticate', bearerChallenge(reply.request.headers.authorization, body));
  }
  return reply.code(body.status).type('application/problem+json').send(body);
}

/**
 * RFC 6750 §3: every 401 names the scheme; when a bearer token came and was refused (malformed,
 * expired, of an ended session), also `invalid_token` and why.
 */
function bearerChallenge(authorization: string | undefined, body: Problem): string {
  const challenge = 'Bearer realm="connect"';
  if (!authorization || !/^bearer\s/i.test(authorization)) return challenge;
  // A quoted-string of the characters RFC 6750 allows in error_description.
  const description = (body.detail ?? body.title).replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
  return `${challenge}, error="invalid_token", error_description="${description}"`;
}

/** An error a route throws to answer with a problem; the server's error handler sends it. */
export class HttpProblem extends Error {
  constructor(readonly body: Problem) {
    super(body.detail ?? body.title);
  }
}

/** Most invalid fields one answer names: a body of a million bad items is answered in a few KB. */
export const MAX_FIELD_ERRORS = 100;

export function badRequest(errors: FieldError[], detail = 'The request has invalid fields.'): HttpProblem {
  if (errors.length <= MAX_FIELD_ERRORS) return new HttpProblem(problem(400, detail, errors));
  const shown = `${detail} Only the first ${MAX_FIELD_ERRORS} are named.`;
  return new HttpProblem(problem(400, shown, errors.slice(0, MAX_FIELD_ERRORS)));
}
