// Operations for admins and auditors: the full ledger audit (what `connect verify ledger` runs), on demand.
import type { Authenticate } from '@connect/auth';
import type { VerifierKey } from '@connect/crypto';
import type { Database } from '@connect/db';
import { readsEverything } from '@connect/domain';
import { HttpProblem, problem } from '@connect/http';
import { auditLedger, type BodyCipher } from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';

export async function adminRoutes(
  app: FastifyInstance,
  deps: { db: Kysely<Database>; key: VerifierKey; cipher: BodyCipher; authenticate: Authenticate },
): Promise<void> {
  let running: Promise<unknown> | undefined;

  app.post('/v1/admin/ledger/audit', async (request) => {
    const claims = await deps.authenticate(request);
    if (!readsEverything(claims.roles))
      throw new HttpProblem(problem(403, 'Only an admin or an auditor can run the ledger audit.'));
    // One audit at a time per process: it reads the whole ledger.
    if (running)
      throw new HttpProblem(
        problem(409, 'An audit is already running; try again when it ends.', undefined, 'busy'),
      );
    const started = performance.now();
    running = auditLedger(deps.db, deps.key, { cipher: deps.cipher });
    try {
      const result = await running;
      return { ...(result as object), seconds: Math.round(performance.now() - started) / 1000 };
    } finally {
      running = undefined;
    }
  });
}
