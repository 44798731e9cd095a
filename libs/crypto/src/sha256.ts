import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { utf8 } from './bytes.ts';

export const HASH_SIZE = 32;

/** Bytes, or text hashed as its UTF-8 bytes (a native hash encodes it without a copy of its own). */
export type Sha256Part = Uint8Array | string;

type Sha256 = (...parts: Sha256Part[]) => Uint8Array;

const bytesOf = (part: Sha256Part) => (typeof part === 'string' ? utf8(part) : part);

function pureSha256(...parts: Sha256Part[]): Uint8Array {
  if (parts.length === 1) return nobleSha256(bytesOf(parts[0] as Sha256Part));
  const hash = nobleSha256.create();
  for (const part of parts) hash.update(bytesOf(part));
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

export function sha256(...parts: Sha256Part[]): Uint8Array {
  return implementation(...parts);
}
