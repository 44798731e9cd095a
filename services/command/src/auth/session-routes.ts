// A person's sessions: listing them (to tell them apart: the client and address that opened each),
// ending one, and logging out this one, the others or all of them (Supabase's logout scopes). An
// ended session's tokens stop working at once and its live subscriptions are closed: the ending
// transaction announces it (NOTIFY) and this process forgets it before answering.
import type { Authenticate, SessionGate } from '@connect/auth';
import type { Database } from '@connect/db';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { endSessions, listSessions } from './sessions.ts';

export interface SessionRouteDeps {
  db: Kysely<Database>;
  authenticate: Authenticate;
  sessions: SessionGate;
  now: () => Date;
}

const scope = z
  .enum(['local', 'others', 'global'])
  .meta({ description: 'local: this session (default); others: every other one; global: all' });
export const logoutQuery = z.object({ scope: scope.optional() });
export const logoutBody = z.object({ scope: scope.optional() }).strict();
export const sessionParams = z.object({ id: z.uuid() });

export const sessionItem = z.object({
  id: z.uuid(),
  createdAt: z.iso.datetime(),
  lastActiveAt: z.iso.datetime(),
  userAgent: z.string().nullable(),
  address: z.string().nullable(),
  current: z.boolean().meta({ description: 'the session of the access token that asked' }),
});
export const sessionList = z.object({ items: z.array(sessionItem) });

export async function sessionRoutes(app: FastifyInstance, deps: SessionRouteDeps): Promise<void> {
  const { db, authenticate, now } = deps;

  async function end(which: { userId: string; only?: string; except?: string }): Promise<string[]> {
    const ended = await db.transaction().execute((trx) => endSessions(trx, which, now()));
    for (const id of ended) deps.sessions.forget(id);
    return ended;
  }

  app.get('/v1/auth/sessions', async (request) => {
    const caller = await authenticate(request);
    const sessions = await listSessions(db, caller.userId, now());
    return {
      items: sessions.map((session) => ({
        id: session.id,
        createdAt: session.createdAt.toISOString(),
        lastActiveAt: session.lastActiveAt.toISOString(),
        userAgent: session.userAgent,
        address: session.address,
        current: session.id === caller.sessionId,
      })),
    };
  });

  app.delete('/v1/auth/sessions/:id', async (request, reply) => {
    const caller = await authenticate(request);
    const { id } = parseWith(sessionParams, request.params, 'path');
    const ended = await end({ userId: caller.userId, only: id });
    // Someone else's session, or one that already ended: the same answer.
    if (ended.length === 0) throw new HttpProblem(problem(404, 'You have no live session with this id.'));
    return reply.code(204).send();
  });

  app.post('/v1/auth/logout', async (request, reply) => {
    const caller = await authenticate(request);
    const inQuery = parseWith(logoutQuery, request.query, 'query').scope;
    const inBody = parseWith(logoutBody, request.body ?? {}).scope;
    if (inQuery && inBody && inQuery !== inBody)
      throw new HttpProblem(
        problem(400, 'The query and the body ask for different scopes.', [
          { path: 'body.scope', message: `differs from query.scope (${inQuery})` },
        ]),
      );
    const chosen = inQuery ?? inBody ?? 'local';
    await end(
      chosen === 'local'
        ? { userId: caller.userId, only: caller.sessionId }
        : chosen === 'others'
          ? { userId: caller.userId, except: caller.sessionId }
          : { userId: caller.userId },
    );
    return reply.code(204).send();
  });
}
