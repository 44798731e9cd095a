// Admins define commitment types beyond the defaults; each definition is a ledger event.

import type { Authenticate } from '@connect/auth';
import { COMMITMENT_TYPE_DEFINED, COMMITMENT_TYPES_STREAM, commitmentTypeSchema } from '@connect/domain';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type { TypeRegistry } from './load.ts';

export async function commitmentTypeRoutes(
  app: FastifyInstance,
  deps: { ledger: Ledger; types: TypeRegistry; authenticate: Authenticate },
): Promise<void> {
  app.post('/v1/commitment-types', async (request, reply) => {
    const caller = await deps.authenticate(request);
    if (!caller.isAdmin) throw new HttpProblem(problem(403, 'Only an admin can define commitment types.'));
    const type = parseWith(commitmentTypeSchema, request.body);
    if ((await deps.types.get(true)).has(type.key)) {
      throw new HttpProblem(
        problem(409, `A commitment type "${type.key}" exists already.`, undefined, 'already-exists'),
      );
    }
    const result = await deps.ledger.append({
      stream: COMMITMENT_TYPES_STREAM,
      expectedVersion: 'any',
      actor: caller.userId,
      events: [
        {
          type: COMMITMENT_TYPE_DEFINED,
          data: type,
          meta: { correlationId: request.correlationId, command: 'define-type' },
        },
      ],
    });
    if (result.outcome !== 'appended') throw new Error(`type append: ${result.outcome}`);
    await deps.types.get(true);
    const [entry] = result.entries;
    return reply
      .code(201)
      .send({ type, event: entry && { index: entry.index, id: entry.id, leafHash: entry.leafHash } });
  });
}
