import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** Refresh tokens are random; only their SHA-256 is stored. */
export function newRefreshToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashRefreshToken(token) };
}

export function hashRefreshToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

// A token used twice within the grace window (two tabs refreshing at once) must get the same
// successor, but only hashes are stored. So the successor is kept on the used token's row,
// encrypted (AES-256-GCM) under a key derived from the used token. Only someone presenting that
// token can open it; the database alone cannot (it holds a different hash of the token), and there
// is no server secret to share between processes. Deriving the successor from the token instead
// would let whoever saw an old token compute the rest of the chain without ever being caught.
const sealKey = (token: string) =>
  createHash('sha256').update('connect refresh successor\0').update(token).digest();

export function sealSuccessor(token: string, successor: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealKey(token), iv);
  const sealed = Buffer.concat([cipher.update(successor, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), sealed]);
}

/** The successor sealed for this token; undefined when it does not open with it. */
export function openSuccessor(token: string, sealed: Uint8Array): string | undefined {
  const bytes = Buffer.from(sealed);
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealKey(token), bytes.subarray(0, 12));
    decipher.setAuthTag(bytes.subarray(12, 28));
    return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
