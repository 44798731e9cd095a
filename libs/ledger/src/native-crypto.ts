// The server side of libs/crypto: Node's native SHA-256 and Ed25519 in place of the pure ones
// (which stay for browsers). Same digests and signatures, many times faster: every append,
// proof, audit and verification hashes.
import { createPublicKey, hash, verify as nodeVerify } from 'node:crypto';
import { useNativeSha256, type VerifierKey } from '@connect/crypto';

// One call per digest: a Hash object costs far more than the digest of a small input (and leaves
// the garbage collector a native handle to clear). Several parts are laid end to end first, in a
// buffer kept for it (hashing is synchronous, so no two digests share it at once) and wiped after
// each digest, since the parts may be a salt and a body; text is encoded as UTF-8 straight into it.
const JOINED_KEPT = 64 * 1024;
let joined = Buffer.allocUnsafeSlow(4096);
useNativeSha256((...parts) => {
  if (parts.length === 1) return digestOf(parts[0] as string | Uint8Array);
  let size = 0;
  for (const part of parts) size += typeof part === 'string' ? Buffer.byteLength(part) : part.byteLength;
  const buffer = joinedBuffer(size);
  let at = 0;
  for (const part of parts)
    if (typeof part === 'string') at += buffer.write(part, at);
    else {
      buffer.set(part, at);
      at += part.byteLength;
    }
  try {
    return digestOf(buffer.subarray(0, at));
  } finally {
    buffer.fill(0, 0, at);
  }
});

/** The kept buffer, grown to `size`; a larger input than is worth keeping one for gets its own. */
function joinedBuffer(size: number): Buffer {
  if (size > JOINED_KEPT) return Buffer.allocUnsafeSlow(size);
  if (size > joined.length)
    joined = Buffer.allocUnsafeSlow(Math.min(JOINED_KEPT, Math.max(size, 2 * joined.length)));
  return joined;
}

/**
 * As binary (latin1) text, one character per byte, copied into a small array V8 keeps on its own
 * heap: a digest returned as a Buffer costs a native allocation of its own, twice the hashing.
 */
function digestOf(input: string | Uint8Array): Uint8Array {
  const digest = hash('sha256', input, 'binary');
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = digest.charCodeAt(i);
  return bytes;
}

// SPKI wrapping of a raw Ed25519 public key (RFC 8410): this prefix, then the 32 key bytes.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** The key with Node's native Ed25519 to check its signatures. */
export function withNativeVerifier<K extends VerifierKey>(key: K): K {
  const publicKey = createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, key.publicKey]),
    format: 'der',
    type: 'spki',
  });
  return { ...key, verifier: (message, signature) => nodeVerify(null, message, publicKey, signature) };
}
