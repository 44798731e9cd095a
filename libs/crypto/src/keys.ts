// Ed25519 ledger keys and verifier keys in the format of Go's golang.org/x/mod/sumdb/note.
import { ed25519 } from '@noble/curves/ed25519.js';
import { concatBytes, equalBytes, fromBase64, toBase64, toHex, utf8 } from './bytes.ts';
import { sha256 } from './sha256.ts';

const ALG_ED25519 = 0x01;

export interface VerifierKey {
  name: string;
  keyId: Uint8Array;
  publicKey: Uint8Array;
  /** A faster check of this key's signatures (e.g. the platform's native Ed25519); the pure one otherwise. */
  verifier?: (message: Uint8Array, signature: Uint8Array) => boolean;
}

export interface SigningKey extends VerifierKey {
  seed: Uint8Array;
  /** A faster signer for the same key (e.g. the platform's native Ed25519); the pure one otherwise. */
  signer?: (message: Uint8Array) => Uint8Array;
}

export class KeyFormatError extends Error {}

/** A key name is non-empty UTF-8 without '+', whitespace or control characters. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[+\s\p{Cc}]/u.test(name);
}

/** First 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key). */
export function keyId(name: string, publicKey: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8(name), new Uint8Array([0x0a, ALG_ED25519]), publicKey)).subarray(0, 4);
}

export function signingKeyFromSeed(name: string, seed: Uint8Array): SigningKey {
  if (!isValidKeyName(name)) throw new KeyFormatError('key name must not be empty or hold "+" or spaces');
  if (seed.length !== 32) throw new KeyFormatError('an Ed25519 seed is 32 bytes');
  const publicKey = ed25519.getPublicKey(seed);
  return { name, seed, publicKey, keyId: keyId(name, publicKey) };
}

/** `<name>+<key id, 8 hex digits>+<base64(0x01 ‖ public key)>` */
export function formatVerifierKey(key: VerifierKey): string {
  return `${key.name}+${toHex(key.keyId)}+${toBase64(concatBytes(new Uint8Array([ALG_ED25519]), key.publicKey))}`;
}

export function parseVerifierKey(text: string): VerifierKey {
  // The base64 key may itself hold '+': split at the first two only, as Go's note package does.
  const first = text.indexOf('+');
  const second = text.indexOf('+', first + 1);
  if (first < 0 || second < 0) throw new KeyFormatError('a verifier key is name+keyid+key');
  const name = text.slice(0, first);
  const hexId = text.slice(first + 1, second);
  const encoded = text.slice(second + 1);
  if (!isValidKeyName(name)) throw new KeyFormatError('invalid key name');
  if (!/^[0-9a-f]{8}$/.test(hexId)) throw new KeyFormatError('key id must be 8 lowercase hex digits');
  let raw: Uint8Array;
  try {
    raw = fromBase64(encoded);
  } catch {
    throw new KeyFormatError('key is not base64');
  }
  if (raw.length !== 33 || raw[0] !== ALG_ED25519)
    throw new KeyFormatError('only Ed25519 keys are supported');
  const publicKey = raw.subarray(1);
  const id = keyId(name, publicKey);
  if (toHex(id) !== hexId) throw new KeyFormatError('key id does not match the key');
  return { name, keyId: id, publicKey };
}

export function sign(key: SigningKey, message: Uint8Array): Uint8Array {
  return key.signer ? key.signer(message) : ed25519.sign(message, key.seed);
}

export function verifySignature(key: VerifierKey, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    if (key.verifier) return key.verifier(message, signature);
    return ed25519.verify(signature, message, key.publicKey);
  } catch {
    return false;
  }
}

export function sameKey(a: VerifierKey, b: VerifierKey): boolean {
  return a.name === b.name && equalBytes(a.keyId, b.keyId) && equalBytes(a.publicKey, b.publicKey);
}
