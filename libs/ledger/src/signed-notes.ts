// The checkpoint notes signed in this process lately, by tree size: a stored note identical to one
// of them is that checkpoint, signature and all, so a continuous audit here (on this thread or,
// told by the appender's observer, on another) need not check its signature a second time.
import type { Checkpoint } from '@connect/crypto';
import { LRUCache } from 'lru-cache';

/** Notes kept: more than a continuous audit round ever finds new. */
const SIGNED_KEPT = 4096;

export interface SignedNotes {
  keep(checkpoint: Checkpoint, note: string): void;
  /** The checkpoint a note identical to `note` at this size was signed for here, if one was. */
  signedHere(treeSize: number, note: string): Checkpoint | undefined;
}

export function signedNotes(max = SIGNED_KEPT): SignedNotes {
  const signed = new LRUCache<number, { note: string; checkpoint: Checkpoint }>({ max });
  return {
    keep: (checkpoint, note) => signed.set(checkpoint.treeSize, { note, checkpoint }),
    signedHere(treeSize, note) {
      const kept = signed.get(treeSize);
      return kept?.note === note ? kept.checkpoint : undefined;
    },
  };
}
