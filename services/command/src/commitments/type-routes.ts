// Admins define commitment types beyond the defaults; each definition is a ledger event.

import type { Authenticate } from '@connect/auth';
import type { JsonObject } from '@connect/crypto';
import {
  COMMITMENT_TYPE_DEFINED,
  COMMITMENT_TYPES_STREAM,
  type CommitmentType,
  commitmentTypeSchema,
} from '@connect/domain';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { Entry, Ledger } from '@connect/ledger';
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
    const result = await defineType(deps, type, {
      actor: caller.userId,
      meta: { correlationId: request.correlationId, command: 'define-type' },
    });
    const [entry] = result.entries;
    return reply
      .code(201)
      .send({ type, event: entry && { index: entry.index, id: entry.id, leafHash: entry.leafHash } });
  });
}

/** Tries before two admins defining types at once, again and again, get 409 busy. */
const MAX_ATTEMPTS = 5;

/**
 * Appends the definition after the types it was checked against: a definition that lands in
 * between (the same key from another admin, say) fails the append, and the check runs again.
 */
async function defineType(
  deps: { ledger: Ledger; types: TypeRegistry },
  type: CommitmentType,
  by: { actor: string; meta: JsonObject },
): Promise<{ entries: Entry[] }> {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const { types, version } = await deps.types.current();
    if (types.has(type.key)) {
      throw new HttpProblem(
        problem(409, `A commitment type "${type.key}" exists already.`, undefined, 'already-exists'),
      );
    }
    const result = await deps.ledger.append({
      stream: COMMITMENT_TYPES_STREAM,
      expectedVersion: version === 0 ? 'no_stream' : version,
      actor: by.actor,
      events: [{ type: COMMITMENT_TYPE_DEFINED, data: type, meta: by.meta }],
    });
    if (result.outcome === 'appended') {
      await deps.types.get(true);
      return result;
    }
    if (result.outcome !== 'version_conflict') throw new Error(`type append: ${result.outcome}`);
  }
  throw new HttpProblem(
    problem(
      409,
      'Commitment types are being defined too fast to add this one; try again.',
      undefined,
      'busy',
    ),
  );
}
