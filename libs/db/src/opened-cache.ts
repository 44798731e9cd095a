/** Values kept per cache (and the bytes they may take); beyond either the oldest used is dropped. */
const CACHE_SIZE = 10_000;
const CACHE_BYTES = 32 * 1024 * 1024;

export interface OpenedCache {
  /** Bumped by each clear; read it before reading the keys a value is opened with. */
  epoch(): number;
  /** The plaintext last kept for `id`, only if it came from exactly these sealed bytes. */
  get(id: string, sealed: Uint8Array): Buffer | undefined;
  /** Keeps a plaintext opened (or sealed) with a key read at `keyEpoch`, unless a clear came since. */
  set(id: string, sealed: Uint8Array, plaintext: Buffer, keyEpoch: number): void;
  clear(): void;
}

/**
 * The plaintexts of values opened or sealed lately, by where they are stored, each beside the
 * ciphertext it belongs to: a stored value is read far more often than written, so it is opened
 * once. A hit counts only for the very same stored bytes (an altered row is opened, and fails, as
 * if never read); callers look a value up only after its key was found live, and clear the cache
 * on every erasure heard.
 */
export function openedCache(): OpenedCache {
  // Each value is `sealed ‖ plaintext` in one buffer of its own (not a slice of a shared pool,
  // which a cached slice would keep alive whole).
  const cache = new Map<string, { sealedLength: number; both: Buffer }>();
  let bytes = 0;
  // A value opened with a key read before an erasure is not kept after it.
  let epoch = 0;
  return {
    epoch: () => epoch,
    get(id, sealed) {
      const hit = cache.get(id);
      if (
        !hit ||
        hit.sealedLength !== sealed.length ||
        !hit.both.subarray(0, hit.sealedLength).equals(sealed)
      )
        return undefined;
      cache.delete(id);
      cache.set(id, hit);
      return hit.both.subarray(hit.sealedLength);
    },
    set(id, sealed, plaintext, keyEpoch) {
      if (keyEpoch !== epoch) return;
      const previous = cache.get(id);
      if (previous) {
        cache.delete(id);
        bytes -= previous.both.length;
      }
      const both = Buffer.allocUnsafeSlow(sealed.length + plaintext.length);
      both.set(sealed, 0);
      both.set(plaintext, sealed.length);
      cache.set(id, { sealedLength: sealed.length, both });
      bytes += both.length;
      for (const [oldest, value] of cache) {
        if (cache.size <= CACHE_SIZE && bytes <= CACHE_BYTES) break;
        cache.delete(oldest);
        bytes -= value.both.length;
      }
    },
    clear: () => {
      epoch++;
      cache.clear();
      bytes = 0;
    },
  };
}
