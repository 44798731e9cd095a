// A rate limit per signed-in caller rather than per client address, for routes one account could
// abuse from many addresses (invite by email tells whether an address is registered). Counted in
// PostgreSQL, shared by every instance: the limiter is the one commandRoutes registers
// (../rate-limits.ts).
import type { Authenticate } from '@connect/auth';
import { HttpProblem, problem } from '@connect/http';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export interface CallerRateLimit {
  authenticate: Authenticate;
  /** Requests per caller and minute. */
  max: number;
  /** Which requests count; all by default. */
  applies?(request: FastifyRequest): boolean;
  /** What is limited, for the 429's detail: "Too many <what>". */
  what: string;
}

/** The route options that apply the limit (under the shared limiter registered on a parent of `app`). */
export async function callerRateLimit(_app: FastifyInstance, limit: CallerRateLimit) {
  return {
    config: {
      rateLimit: {
        max: limit.max,
        timeWindow: '1 minute',
        // After the body is parsed, so `applies` can look at it.
        hook: 'preHandler' as const,
        keyGenerator: async (request: FastifyRequest) => {
          try {
            return `caller:${(await limit.authenticate(request)).userId}`;
          } catch {
            return ''; // unauthenticated: the route answers 401 itself
          }
        },
        allowList: (request: FastifyRequest, key: string) =>
          key === '' || (limit.applies ? !limit.applies(request) : false),
        errorResponseBuilder: (_request: FastifyRequest, context: { after: string }) =>
          new HttpProblem(
            problem(429, `Too many ${limit.what}; try again in ${context.after}.`, undefined, 'rate-limited'),
          ),
      },
    },
  };
}
