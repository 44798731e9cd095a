// Read-your-writes: every response says which ledger index it reflects (Connect-Index), and
// Connect-Min-Index: N holds the request until the read models include index N, or answers 503.
import { badRequest, HttpProblem, problem } from '@connect/http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ProjectedIndex } from './projected-index.ts';

export const DEFAULT_MIN_INDEX_WAIT_MS = 5000;

export function readConsistency(index: ProjectedIndex, maxWaitMs = DEFAULT_MIN_INDEX_WAIT_MS) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = request.headers['connect-min-index'];
    if (header !== undefined) {
      const raw = String(header);
      if (!/^(0|[1-9][0-9]{0,15})$/.test(raw)) {
        throw badRequest([
          { path: 'header.connect-min-index', message: 'must be a ledger index (a non-negative integer)' },
        ]);
      }
      if (!(await index.waitFor(Number(raw), maxWaitMs))) {
        reply.header('retry-after', '1');
        reply.header('connect-index', String(index.current()));
        throw new HttpProblem(
          problem(
            503,
            `The read models have not reached index ${raw} yet (they are at ${index.current()}); retry shortly.`,
          ),
        );
      }
    }
    // Taken before the handler reads, so the data is at least this fresh.
    reply.header('connect-index', String(index.current()));
  };
}
