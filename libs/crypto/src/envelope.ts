// Envelope encryption: AES-256-GCM with associated data, so a ciphertext opens only where it was
// sealed (table, row, field). The caller brings the key and the 12-byte nonce; nothing here reads
// a random source.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from 'node:crypto';

export const KEY_SIZE = 32;
export const NONCE_SIZE = 12;
const TAG_SIZE = 16;
/** The first byte of every sealed value, so the format can change without guessing. */
const FORMAT_V1 = 1;

/** Thrown when a sealed value does not open: wrong key, wrong place, or altered bytes. */
export class SealBroken extends Error {
  constructor(where: string) {
    super(`the sealed value of ${where} does not open with its key (altered, moved, or its key destroyed)`);
    this.name = 'SealBroken';
  }
}

/** `v1 ‖ nonce ‖ ciphertext ‖ tag`; `place` is the associated data naming where the value lives. */
export function seal(key: Uint8Array, plaintext: Uint8Array, place: string, nonce: Uint8Array): Buffer {
  if (key.length !== KEY_SIZE) throw new Error(`an encryption key is ${KEY_SIZE} bytes`);
  if (nonce.length !== NONCE_SIZE) throw new Error(`a nonce is ${NONCE_SIZE} bytes`);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(place, 'utf8'));
  const body = cipher.update(plaintext);
  const last = cipher.final();
  return Buffer.concat([Buffer.of(FORMAT_V1), nonce, body, last, cipher.getAuthTag()]);
}

/** The plaintext of a value sealed at `place` with `key`; throws SealBroken otherwise. */
export function open(key: Uint8Array, sealed: Uint8Array, place: string): Buffer {
  if (sealed.length < 1 + NONCE_SIZE + TAG_SIZE || sealed[0] !== FORMAT_V1) throw new SealBroken(place);
  const nonce = sealed.subarray(1, 1 + NONCE_SIZE);
  const tag = sealed.subarray(sealed.length - TAG_SIZE);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(Buffer.from(place, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([
      decipher.update(sealed.subarray(1 + NONCE_SIZE, sealed.length - TAG_SIZE)),
      decipher.final(),
    ]);
  } catch {
    throw new SealBroken(place);
  }
}

export const sealText = (key: Uint8Array, text: string, place: string, nonce: Uint8Array) =>
  seal(key, Buffer.from(text, 'utf8'), place, nonce);

export const openText = (key: Uint8Array, sealed: Uint8Array, place: string) =>
  open(key, sealed, place).toString('utf8');

/** A key for one purpose derived from a root key (HKDF-SHA-256), e.g. the blind-index key. */
export function deriveKey(root: Uint8Array, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), `connect ${purpose}`, KEY_SIZE));
}

/**
 * A blind index: an HMAC of a normalised value, so an equal value is found by equality without
 * the column holding it. Only the holder of the index key can compute one.
 */
export function blindIndex(indexKey: Uint8Array, value: string): Buffer {
  return createHmac('sha256', indexKey).update(value, 'utf8').digest();
}

/** A short public name of a key (not a secret): the first 8 bytes of an HMAC under it, in hex. */
export function dataKeyId(key: Uint8Array): string {
  return createHmac('sha256', key).update('connect key id').digest('hex').slice(0, 16);
}
