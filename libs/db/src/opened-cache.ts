import { LRUCache } from 'lru-cache';

/** Values kept per cache (and the bytes they may take); beyond either the least recently used go. */
const CACHE_SIZE = 10_000;
const CACHE_BYTES = 32 * 1024 * 1024;

export interface OpenedCache {
  /** Bumped by each clear; read it before reading the keys a value is opened with. */
  epoch(): number;
  /**
   * The plaintext last kept for the value at `place`, only if it was opened with `owner`'s key (a
   * value read as another's must not open) and came from exactly these sealed bytes.
   */
  get(place: string, owner: string, sealed: Uint8Array): Buffer | undefined;
  /** Keeps a plaintext opened (or sealed) with `owner`'s key read at `keyEpoch`, unless a clear came since. */
  set(place: string, owner: string, sealed: Uint8Array, plaintext: Buffer, keyEpoch: number): void;
  clear(): void;
}

interface Kept {
  owner: string;
  sealedLength: number;
  /** `sealed ‖ plaintext` in one buffer of its own (a slice of a shared pool would keep it all alive). */
  both: Buffer;
}

/**
 * The plaintexts of values opened or sealed lately, by where they are stored, each beside the
 * ciphertext it belongs to: a stored value is read far more often than written, so it is opened
 * once. A hit counts only for the very same stored bytes (an altered row is opened, and fails, as
 * if never read); callers look a value up only after its key was found live, and clear the cache
 * on every erasure heard.
 */
export function openedCache(): OpenedCache {
  // lru-cache, not a Map kept in use order: evicting a Map's oldest entry scans past every entry
  // deleted before it, which took tens of microseconds a value once the cache was full.
  const cache = new LRUCache<string, Kept>({
    max: CACHE_SIZE,
    maxSize: CACHE_BYTES,
    sizeCalculation: (kept) => kept.both.length,
  });
  // A value opened with a key read before an erasure is not kept after it.
  let epoch = 0;
  return {
    epoch: () => epoch,
    get(place, owner, sealed) {
      const hit = cache.get(place);
      if (
        !hit ||
        hit.owner !== owner ||
        hit.sealedLength !== sealed.length ||
        !hit.both.subarray(0, hit.sealedLength).equals(sealed)
      )
        return undefined;
      return hit.both.subarray(hit.sealedLength);
    },
    set(place, owner, sealed, plaintext, keyEpoch) {
      if (keyEpoch !== epoch) return;
      const both = Buffer.allocUnsafeSlow(sealed.length + plaintext.length);
      both.set(sealed, 0);
      both.set(plaintext, sealed.length);
      cache.set(place, { owner, sealedLength: sealed.length, both });
    },
    clear: () => {
      epoch++;
      cache.clear();
    },
  };
}
