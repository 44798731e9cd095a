import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

export const HASH_SIZE = 32;

type Sha256 = (...parts: Uint8Array[]) => Uint8Array;

function pureSha256(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return nobleSha256(parts[0] as Uint8Array);
  const hash = nobleSha256.create();
  for (const part of parts) hash.update(part);
  return hash.digest();
}

let implementation: Sha256 = pureSha256;

/**
 * Installs the platform's native SHA-256 (a server's; many times faster than the pure one this
 * library ships for browsers). It must give the same digests; the vectors check it does.
 */
export function useNativeSha256(native: Sha256): void {
  implementation = native;
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  return implementation(...parts);
}
