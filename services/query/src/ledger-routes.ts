// Public ledger endpoints: the signed checkpoint, the verifier key and Merkle proofs. They
// reveal only hashes (leaves commit to salted data hashes), so they need no caller identity.
import { toBase64, type VerifierKey } from '@connect/crypto';
import type { Database } from '@connect/db';
import { badRequest, HttpProblem, problem } from '@connect/http';
import {
  consistencyProof,
  inclusionProof,
  latestCheckpoint,
  ProofRequestError,
  type Queryable,
  type TreeNodeCache,
  treeNodeCache,
  warmTreeNodeCache,
} from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { parseLedgerIndex } from './ledger-index.ts';

export interface LedgerRouteDeps {
  db: Kysely<Database>;
  pool: Queryable;
  origin: string;
  verifierKey: string;
  key: VerifierKey;
  /** Node hashes already read, shared with the receipts; a cache of the routes' own when not given. */
  nodes?: TreeNodeCache;
  /**
   * Fill the proof cache from the stored tree once the server is ready (in the background), so
   * proofs within the head as it was then take no round trip; otherwise it fills as proofs read.
   */
  warmProofCache?: boolean;
}

const integerParam = (query: Record<string, string | undefined>, name: string) =>
  parseLedgerIndex(query[name], `query.${name}`);

async function proofOr400<T>(make: () => Promise<T>): Promise<T> {
  try {
    return await make();
  } catch (error) {
    if (error instanceof ProofRequestError) {
      throw badRequest([
        { path: `query.${error.parameter}`, message: error.message.replace(/^[^:]+: /, '') },
      ]);
    }
    throw error;
  }
}

export async function ledgerRoutes(app: FastifyInstance, deps: LedgerRouteDeps): Promise<void> {
  const nodes = deps.nodes ?? treeNodeCache();
  if (deps.warmProofCache) {
    let closing = false;
    let warming: Promise<unknown> | undefined;
    app.addHook('onReady', async () => {
      warming = warmTreeNodeCache(deps.pool, nodes, { stopped: () => closing }).catch((error: unknown) =>
        app.log.warn({ err: error }, 'the proof cache was not filled: proofs read the hashes they lack'),
      );
    });
    app.addHook('onClose', async () => {
      closing = true;
      await warming;
    });
  }
  app.get('/v1/ledger/checkpoint', async (_request, reply) => {
    const checkpoint = await latestCheckpoint(deps.db);
    if (!checkpoint) throw new HttpProblem(problem(404, 'The ledger is empty: no checkpoint is signed yet.'));
    return reply
      .type('text/plain; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('connect-tree-size', String(checkpoint.treeSize))
      .send(checkpoint.note);
  });

  app.get('/v1/ledger/key', async () => ({
    origin: deps.origin,
    verifierKey: deps.verifierKey,
    publicKey: toBase64(deps.key.publicKey),
    algorithm: 'Ed25519',
  }));

  app.get('/v1/ledger/proofs/inclusion', async (request) => {
    const query = request.query as Record<string, string | undefined>;
    const index = integerParam(query, 'index');
    const treeSize = integerParam(query, 'treeSize');
    return proofOr400(() => inclusionProof(deps.pool, index, treeSize, nodes));
  });

  app.get('/v1/ledger/proofs/consistency', async (request) => {
    const query = request.query as Record<string, string | undefined>;
    const from = integerParam(query, 'from');
    const to = integerParam(query, 'to');
    return proofOr400(() => consistencyProof(deps.pool, from, to, nodes));
  });
}
