// POST /v1/ledger/verify: checks what a client sends — a receipt bundle, an entry with its proof
// and checkpoint, or two checkpoints with a consistency proof — against this ledger's key, and
// says which checks hold.
import {
  type ReceiptBundle,
  type ServedEntry,
  type VerifierKey,
  verifyCheckpointConsistency,
  verifyEntryProof,
  verifyReceipt,
} from '@connect/crypto';
import { badRequest } from '@connect/http';
import type { FastifyInstance } from 'fastify';

type Body =
  | { receipt: ReceiptBundle }
  | { entry: ServedEntry; proof: { index: number; treeSize: number; hashes: string[] }; checkpoint: string }
  | { from: string; to: string; proof: { from: number; to: number; hashes: string[] } };

export async function verifyRoutes(app: FastifyInstance, deps: { key: VerifierKey }): Promise<void> {
  app.post('/v1/ledger/verify', { bodyLimit: 8 * 1024 * 1024 }, async (request) => {
    const body = request.body as Partial<Record<string, unknown>> | null;
    if (body && typeof body === 'object' && 'receipt' in body) return verifyReceipt(body.receipt, deps.key);
    if (body && typeof body === 'object' && 'entry' in body && 'proof' in body && 'checkpoint' in body) {
      return verifyEntryProof(body as Extract<Body, { entry: unknown }>, deps.key);
    }
    if (body && typeof body === 'object' && 'from' in body && 'to' in body && 'proof' in body) {
      return verifyCheckpointConsistency(body as Extract<Body, { from: unknown }>, deps.key);
    }
    throw badRequest(
      [{ path: 'body', message: 'send {receipt}, {entry, proof, checkpoint} or {from, to, proof}' }],
      'Nothing to verify.',
    );
  });
}
