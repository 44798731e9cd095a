// GET /v1/commitments/:id/receipt: the self-contained bundle a party keeps and verifies offline.
// (It lives beside the commands for now, where callers are authenticated.)

import type { Authenticate } from '@connect/auth';
import type { Database } from '@connect/db';
import { canSee, commitmentStream, evolve, initialState, readEvent } from '@connect/domain';
import { parseWith } from '@connect/http';
import { buildReceipt, type Ledger } from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { z } from 'zod';
import { notFound } from './execute.ts';
import { loadCommitment } from './load.ts';

export async function receiptRoute(
  app: FastifyInstance,
  deps: { db: Kysely<Database>; pool: pg.Pool; ledger: Ledger; authenticate: Authenticate },
): Promise<void> {
  app.get('/v1/commitments/:id/receipt', async (request) => {
    const { id } = parseWith(z.object({ id: z.uuid() }), request.params, 'path');
    const caller = await deps.authenticate(request);
    const { ledger } = deps;
    const current = await loadCommitment(deps.db, ledger.origin, id);
    if (!current.exists || !canSee(current, caller)) throw notFound();
    const bundle = await buildReceipt(
      { db: deps.db, pool: deps.pool, origin: ledger.origin, verifierKey: ledger.verifierKey },
      commitmentStream(id),
    );
    // The state exactly the bundled events replay to (later events are not in this checkpoint).
    const { exists: _exists, ...state } = bundle.entries.reduce(
      (s, entry) => evolve(s, { event: readEvent(entry), at: entry.recordedAt }),
      initialState(id),
    );
    return { ...bundle, state };
  });
}
