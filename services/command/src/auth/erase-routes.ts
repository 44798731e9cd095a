// DELETE /v1/me: a user erases themself (erase-user.ts), after proving again that they are who
// the session says: with their password, or, for an account that has none (social login only),
// with a session they opened in the last few minutes.
import type { Authenticate, SessionGate } from '@connect/auth';
import { type Database, emailIndex, type KeyRing } from '@connect/db';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { z } from 'zod';
import { authAttemptLimit } from '../rate-limits.ts';
import { eraseUser } from './erase-user.ts';
import { verifyPassword } from './passwords.ts';

export interface EraseRouteDeps {
  pool: pg.Pool;
  db: Kysely<Database>;
  ledger: Ledger;
  keys: KeyRing;
  authenticate: Authenticate;
  sessions: SessionGate;
  authAttemptsPerMinute?: number;
  now?: () => Date;
}

/** How recent a sign-in must be to stand in for a password. */
export const FRESH_SIGN_IN_SECONDS = 5 * 60;

export const eraseBody = z
  .object({
    password: z
      .string()
      .min(1)
      .max(1024)
      .optional()
      .meta({ description: 'the account’s password; an account without one signs in again instead' }),
  })
  .strict();

export async function eraseRoutes(app: FastifyInstance, deps: EraseRouteDeps): Promise<void> {
  const now = deps.now ?? (() => new Date());
  const limited = {
    preHandler: authAttemptLimit(app, deps.authAttemptsPerMinute ?? 20, emailIndex(deps.keys)),
  };

  app.delete('/v1/me', limited, async (request, reply) => {
    const caller = await deps.authenticate(request);
    const body = parseWith(eraseBody, request.body ?? {});
    await reauthenticate(caller, body.password);
    const erased = await eraseUser(deps, caller.userId, {
      actor: caller.userId,
      correlationId: request.correlationId,
    });
    if (erased.outcome === 'no-user') throw new HttpProblem(problem(401, 'This account no longer exists.'));
    return reply.code(204).send();
  });

  /** The password of an account that has one; else a sign-in within FRESH_SIGN_IN_SECONDS. */
  async function reauthenticate(caller: { userId: string; sessionId: string }, password?: string) {
    const user = await deps.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', caller.userId)
      .where('erased_at', 'is', null)
      .executeTakeFirst();
    if (!user) throw new HttpProblem(problem(401, 'This account no longer exists.'));
    if (user.password_hash) {
      if (password === undefined || !(await verifyPassword(password, user.password_hash)))
        throw new HttpProblem(
          problem(403, 'Confirm with the password of this account to erase it.', [
            {
              path: 'body.password',
              message: password === undefined ? 'is required' : 'is not the password of this account',
            },
          ]),
        );
      return;
    }
    const session = await deps.db
      .selectFrom('sessions')
      .select('created_at')
      .where('id', '=', caller.sessionId)
      .executeTakeFirst();
    const freshSince = new Date(now().getTime() - FRESH_SIGN_IN_SECONDS * 1000);
    if (!session || session.created_at < freshSince)
      throw new HttpProblem(
        problem(
          403,
          `Sign in again, then erase the account within ${FRESH_SIGN_IN_SECONDS / 60} minutes.`,
          undefined,
          'forbidden',
        ),
      );
  }
}
