// Outcomes of commands and of sign-ins, counted as responses go out (a counter increment each).
import { sharedCounter } from '@connect/http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const COMMAND_ROUTE = /^\/v1\/commitments(?:\/:id\/([a-z-]+))?$/;

/** The auth flow a request is part of, if it is one that signs someone in. */
function authFlow(request: FastifyRequest, route: string): string | undefined {
  if (route === '/v1/auth/signup') return 'signup';
  if (route === '/v1/auth/oidc/:provider/callback') return 'oidc';
  if (route === '/v1/auth/token') {
    const grant = (request.body as { grant_type?: unknown } | undefined)?.grant_type;
    return grant === 'password' ? 'login' : grant === 'refresh_token' ? 'refresh' : 'other';
  }
  return undefined;
}

function authOutcome(reply: FastifyReply): 'success' | 'failure' {
  if (reply.statusCode >= 400) return 'failure';
  // The OpenID callback sends the browser back with ?error=… when the sign-in did not happen.
  const location = reply.getHeader('location');
  return typeof location === 'string' && /[?&]error=/.test(location) ? 'failure' : 'success';
}

/** Counts POST /v1/commitments… by action and status, and sign-ins by flow and outcome. */
export function countOutcomes(app: FastifyInstance): void {
  const commands = sharedCounter(app.metrics, {
    name: 'connect_commands_total',
    help: 'Commitment commands answered, by action (create, accept, documents, …) and HTTP status',
    labelNames: ['action', 'status'],
  });
  const auth = sharedCounter(app.metrics, {
    name: 'connect_auth_attempts_total',
    help: 'Sign-in attempts by flow (login, refresh, signup, oidc) and outcome (success, failure)',
    labelNames: ['flow', 'outcome'],
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url;
    if (route === undefined) return;
    if (request.method === 'POST') {
      const command = COMMAND_ROUTE.exec(route);
      if (command) {
        commands.inc({ action: command[1] ?? 'create', status: String(reply.statusCode) });
        return;
      }
    }
    const flow = authFlow(request, route);
    if (flow) auth.inc({ flow, outcome: authOutcome(reply) });
  });
}
