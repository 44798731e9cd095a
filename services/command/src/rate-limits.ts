// The command service's limits: commands per user, auth attempts per address and account. They are
// counted by the shared limiter (@connect/http's rate-limits.ts).
import type { Authenticate } from '@connect/auth';
import type { EmailIndex } from '@connect/db';
import { sharedRateLimit } from '@connect/http';
import type { FastifyInstance, FastifyRequest, onRequestAsyncHookHandler, RouteOptions } from 'fastify';

/**
 * The blind index of an email, for a key that names an account without holding its address (a
 * plain hash would give the address back to whoever hashes a list of addresses).
 */
export const accountKey = async (index: EmailIndex, email: string) =>
  (await index(email)).toString('base64url');

/** The email a request's body names (signup, login, recover…), if any. */
export function bodyEmail(request: FastifyRequest): string | undefined {
  const body = request.body;
  if (typeof body !== 'object' || body === null) return undefined;
  const email = (body as { email?: unknown }).email;
  return typeof email === 'string' && email.trim() !== '' ? email : undefined;
}

/**
 * The per-user limit of commands (CONNECT_COMMAND_RATE_LIMIT): every POST under /v1/commitments,
 * and PATCH /v1/me, counted per signed-in user before the body is read. A request without a valid
 * token is not counted here; its route answers 401.
 */
export function limitCommands(
  app: FastifyInstance,
  deps: { authenticate: Authenticate; commandsPerMinute: number },
): void {
  const limit = sharedRateLimit(
    app,
    [
      {
        max: deps.commandsPerMinute,
        key: async (request) => {
          try {
            return `command:user:${(await deps.authenticate(request)).userId}`;
          } catch {
            return undefined;
          }
        },
      },
    ],
    'commands',
  );
  const hook: onRequestAsyncHookHandler = (request, reply) => limit(request, reply);
  app.addHook('onRoute', (route) => {
    if (!isCommand(route)) return;
    const existing = route.onRequest;
    route.onRequest = existing === undefined ? [hook] : [...[existing].flat(), hook];
  });
}

function isCommand(route: RouteOptions): boolean {
  const methods = [route.method].flat();
  const url = route.url;
  return (
    (methods.includes('POST') && (url === '/v1/commitments' || url.startsWith('/v1/commitments/'))) ||
    (methods.includes('PATCH') && url === '/v1/me')
  );
}

/**
 * The limit of auth attempts (CONNECT_AUTH_RATE_LIMIT per minute and route): per client address,
 * and per account, the email the body names (signup, login, recover, email change), kept as its
 * blind index. Bodies with a token instead (verify, reset, refresh) name no account: the address limit
 * covers them.
 */
export function authAttemptLimit(app: FastifyInstance, max: number, index: EmailIndex) {
  const route = (request: FastifyRequest) => `auth:${request.routeOptions.url ?? request.url}`;
  return sharedRateLimit(
    app,
    [
      { max, key: (request) => `${route(request)}:address:${request.ip}` },
      {
        max,
        key: async (request) => {
          const email = bodyEmail(request);
          return email === undefined
            ? undefined
            : `${route(request)}:account:${await accountKey(index, email)}`;
        },
      },
    ],
    'attempts',
  );
}
