// The checkpoint notes a continuous audit has opened with the ledger key, each with the tree size
// and the recomputed root it matched. The sweep reads the whole ledger again and again, and a
// ledger under light load has a checkpoint per append: checking each signature anew, an Ed25519
// verification per checkpoint, was the largest part of a busy server's audit. A note found again
// byte for byte, at the same size over the same recomputed root, is the one already checked; one
// altered since differs, and is opened again.
import { hash } from 'node:crypto';

export interface VerifiedNotes {
  has(treeSize: number, note: string, root: Uint8Array): boolean;
  add(treeSize: number, note: string, root: Uint8Array): void;
}

/** About 80 bytes each: the default bounds the memory at some 20 MB. */
const DEFAULT_MAX_NOTES = 250_000;

export function verifiedNotes(maxNotes = DEFAULT_MAX_NOTES): VerifiedNotes {
  const digests = new Set<string>();
  const digestOf = (treeSize: number, note: string, root: Uint8Array) =>
    hash('sha256', `${treeSize}\n${note}\n${Buffer.from(root).toString('base64')}`, 'base64');
  return {
    has: (treeSize, note, root) => digests.has(digestOf(treeSize, note, root)),
    add(treeSize, note, root) {
      // Once full, the first ones stay: the sweep reads from the start, so dropping the oldest
      // would drop each note just before the sweep came back to it.
      if (digests.size < maxNotes) digests.add(digestOf(treeSize, note, root));
    },
  };
}
