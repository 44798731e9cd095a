// Admins see the notification deliveries that used up their attempts (the delivery queue's dead
// letters) and may send one again.
import type { Authenticate } from '@connect/auth';
import { HttpProblem, parseWith, problem } from '@connect/http';
import { listDeadLetters, retryDeadLetter } from '@connect/notifier';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { z } from 'zod';

export const deadLettersQuery = z
  .object({ limit: z.coerce.number().int().min(1).max(500).optional() })
  .strict();

const jobIdParam = z.object({ id: z.string().regex(/^\d{1,18}$/, 'must be a job id (digits)') });

export interface DeadLetterRouteDeps {
  pool: pg.Pool;
  authenticate: Authenticate;
}

export async function deadLetterRoutes(app: FastifyInstance, deps: DeadLetterRouteDeps): Promise<void> {
  async function admin(request: FastifyRequest) {
    const caller = await deps.authenticate(request);
    if (!caller.isAdmin) throw new HttpProblem(problem(403, 'Only an admin can see failed deliveries.'));
  }

  app.get('/v1/admin/notifications/dead-letters', async (request) => {
    await admin(request);
    const { limit } = parseWith(deadLettersQuery, request.query, 'query');
    return { deadLetters: await listDeadLetters(deps.pool, limit) };
  });

  app.post('/v1/admin/notifications/dead-letters/:id/retry', async (request, reply) => {
    await admin(request);
    const { id } = parseWith(jobIdParam, request.params, 'path');
    if (!(await retryDeadLetter(deps.pool, id))) {
      throw new HttpProblem(problem(404, 'No such failed delivery (it may have been retried already).'));
    }
    return reply.code(202).send({ id, retried: true });
  });
}
