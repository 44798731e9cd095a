import type { UserRole } from '@connect/domain';
import { HttpProblem, problem } from '@connect/http';
import type { FastifyRequest } from 'fastify';
import type { SessionGate } from './session-gate.ts';
import type { TokenClaims, TokenIssuer } from './tokens.ts';

/** The caller of a request: the token's session, with the roles its user holds as of now. */
export interface AccessClaims extends TokenClaims {
  roles: readonly UserRole[];
  /** Holds the admin role (types, webhooks, dead letters, roles). */
  isAdmin: boolean;
}

export type Authenticate = (request: FastifyRequest) => Promise<AccessClaims>;

interface AuthDeps {
  tokens: TokenIssuer;
  sessions: SessionGate;
}

/** The caller of a request: a valid bearer token of a session that is still open; else 401. */
export function authenticator(deps: AuthDeps): Authenticate {
  return (request) => authenticateBearer(deps, request.headers.authorization);
}

/**
 * The same check for an `Authorization` value that came another way (a WebSocket's connection_init).
 * The roles come from the database with the session check, never from the token.
 */
export async function authenticateBearer(deps: AuthDeps, header: string | undefined): Promise<AccessClaims> {
  const match = header ? /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header) : null;
  if (!match) throw unauthorized('Send an access token: Authorization: Bearer <token>.');
  let claims: TokenClaims;
  try {
    claims = await deps.tokens.verifyAccessToken(match[1] as string);
  } catch {
    throw unauthorized('The access token is invalid or expired; refresh it or log in again.');
  }
  const access = await deps.sessions.check(claims.sessionId);
  if (!access || access.userId !== claims.userId) {
    throw unauthorized('This session has ended; log in again.');
  }
  return {
    userId: claims.userId,
    sessionId: claims.sessionId,
    roles: access.roles,
    isAdmin: access.roles.includes('admin'),
  };
}

function unauthorized(detail: string): HttpProblem {
  return new HttpProblem(problem(401, detail));
}
