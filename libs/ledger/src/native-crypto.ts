// The server side of libs/crypto: Node's native SHA-256 and Ed25519 in place of the pure ones
// (which stay for browsers). Same digests and signatures, many times faster: every append,
// proof, audit and verification hashes.
import { createHash, createPublicKey, hash, verify as nodeVerify } from 'node:crypto';
import { useNativeSha256, type VerifierKey } from '@connect/crypto';

// One part is hashed in one call (a Hash object costs more than the digest of a small input); text
// is encoded as UTF-8 by the hash itself, without a copy in between.
useNativeSha256((...parts) => {
  let digest: Buffer;
  if (parts.length === 1) digest = hash('sha256', parts[0] as string | Uint8Array, 'buffer');
  else {
    const running = createHash('sha256');
    for (const part of parts) running.update(part);
    digest = running.digest();
  }
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
});

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
