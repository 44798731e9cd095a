// POST /v1/ledger/verify: checks what a client sends — a receipt bundle, an entry with its proof
// and checkpoint, or two checkpoints with a consistency proof — against this ledger's key, and
// says which checks hold. A receipt's entries are replayed with the domain's rules and compared
// with its state. A body of the wrong shape is a 400 naming the field; values of the
// right shape that do not add up are what the checks report.
import {
  type ReceiptBundle,
  type ServedEntry,
  type VerifierKey,
  verifyCheckpointConsistency,
  verifyEntryProof,
  verifyReceipt,
} from '@connect/crypto';
import { DEFAULT_VERIFY_RATE_LIMIT } from '@connect/db';
import { badRequest, parseWith, RATE_LIMIT_WINDOW_MS } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { replayReceipt } from './receipt-state.ts';

const MAX_PROOF_HASHES = 64;
const index = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const hashes = z.array(z.string().max(64)).max(MAX_PROOF_HASHES);
const inclusionProof = z.object({ index, treeSize: index.min(1), hashes });
const consistencyProof = z.object({ from: index, to: index, hashes });
const note = z.string().max(10_000);

// Header fields are optional here: a missing one is a failed check ("header is complete"), not a 400.
const servedEntry = z.looseObject({
  ledger: z.string().optional(),
  index: index.optional(),
  id: z.string().optional(),
  stream: z.string().optional(),
  version: index.optional(),
  type: z.string().optional(),
  schema: index.optional(),
  recordedAt: z.string().optional(),
  actor: z.string().nullable().optional(),
  meta: z.record(z.string(), z.unknown()).optional(),
  dataHash: z.string().optional(),
  data: z.record(z.string(), z.unknown()).nullable().optional(),
  salt: z.string().nullable().optional(),
  leafHash: z.string().optional(),
});

// A proven entry takes a kilobyte or more, so no receipt within the 8 MB body limit holds more
// than this; the bound keeps a body of tiny bad items from being checked (and answered) item by item.
const MAX_RECEIPT_ENTRIES = 10_000;
const provenEntries = z.array(servedEntry.extend({ proof: inclusionProof })).max(MAX_RECEIPT_ENTRIES);
export const receiptBody = z.object({
  receipt: z.looseObject({
    origin: z.string().optional(),
    verifierKey: z.string().optional(),
    checkpoint: note.optional(),
    streamHead: note.optional(),
    entries: provenEntries,
    profiles: provenEntries.optional(),
    state: z.unknown().optional(),
  }),
});
export const entryBody = z.object({
  entry: servedEntry,
  proof: inclusionProof,
  checkpoint: note,
  verifierKey: z.string().optional(),
});
export const consistencyBody = z.object({
  from: note,
  to: note,
  proof: consistencyProof,
  verifierKey: z.string().optional(),
});

const has = (body: unknown, ...keys: string[]) =>
  typeof body === 'object' && body !== null && keys.every((key) => key in body);

export async function verifyRoutes(
  app: FastifyInstance,
  deps: { key: VerifierKey; verifiesPerMinute?: number },
): Promise<void> {
  // Anyone may ask, and one request may be 8 MB to parse and thousands of hashes to check: counted per
  // client address before its body is parsed (the shared limiter the query routes register).
  const rateLimit = {
    max: deps.verifiesPerMinute ?? DEFAULT_VERIFY_RATE_LIMIT,
    timeWindow: RATE_LIMIT_WINDOW_MS,
  };
  app.post('/v1/ledger/verify', { bodyLimit: 8 * 1024 * 1024, config: { rateLimit } }, async (request) => {
    const body = request.body;
    if (has(body, 'receipt')) {
      const { receipt } = parseWith(receiptBody, body);
      return verifyReceipt(receipt as unknown as ReceiptBundle, deps.key, { replay: replayReceipt });
    }
    if (has(body, 'entry', 'proof', 'checkpoint')) {
      const input = parseWith(entryBody, body);
      return verifyEntryProof({ ...input, entry: input.entry as unknown as ServedEntry }, deps.key);
    }
    if (has(body, 'from', 'to', 'proof'))
      return verifyCheckpointConsistency(parseWith(consistencyBody, body), deps.key);
    throw badRequest(
      [{ path: 'body', message: 'send {receipt}, {entry, proof, checkpoint} or {from, to, proof}' }],
      'Nothing to verify.',
    );
  });
}
