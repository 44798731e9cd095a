// Read-your-writes: every response says which ledger index it reflects (Connect-Index), and
// Connect-Min-Index: N holds the request until the read models it reads include index N, or
// answers 503.
import { HttpProblem, problem } from '@connect/http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseLedgerIndex } from './ledger-index.ts';
import type { ProjectedIndex, Reach } from './projected-index.ts';

export const DEFAULT_MIN_INDEX_WAIT_MS = 5000;

/** The index Connect-Min-Index asks for, if any; a malformed one is a 400 naming the header. */
export function minIndexOf(request: FastifyRequest): number | undefined {
  const header = request.headers['connect-min-index'];
  return header === undefined ? undefined : parseLedgerIndex(String(header), 'header.connect-min-index');
}

export function readConsistency(
  projected: ProjectedIndex,
  maxWaitMs = DEFAULT_MIN_INDEX_WAIT_MS,
  reach: Reach = 'read-models',
) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const wanted = minIndexOf(request);
    if (wanted !== undefined) {
      if (!(await projected.waitFor(wanted, maxWaitMs, reach))) {
        reply.header('retry-after', '1');
        reply.header('connect-index', String(projected.current(reach)));
        throw new HttpProblem(
          problem(
            503,
            `The read models have not reached index ${wanted} yet (they are at ${projected.current(reach)}); retry shortly.`,
          ),
        );
      }
    }
    // Taken before the handler reads, so the data is at least this fresh.
    reply.header('connect-index', String(projected.current(reach)));
  };
}
