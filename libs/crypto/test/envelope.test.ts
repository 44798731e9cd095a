// Sealing with associated data: a value opens only with its key, at its place, unaltered.
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import {
  blindIndex,
  dataKeyId,
  deriveKey,
  open,
  openText,
  SealBroken,
  seal,
  sealText,
} from '../src/envelope.ts';

const key = randomBytes(32);
const nonce = () => randomBytes(12);

describe('seal and open', () => {
  test('a sealed value opens to its plaintext at its place, and holds no plaintext bytes', () => {
    const sealed = sealText(key, 'IBAN DE89 3704 0044 0532 0130 00', 'commitments:c1:terms', nonce());
    expect(sealed.includes(Buffer.from('IBAN'))).toBe(false);
    expect(openText(key, sealed, 'commitments:c1:terms')).toBe('IBAN DE89 3704 0044 0532 0130 00');
  });

  test('a value moved to another row, read with another key, or altered does not open', () => {
    const sealed = seal(key, Buffer.from('secret'), 'commitments:c1:terms', nonce());
    expect(() => open(key, sealed, 'commitments:c2:terms')).toThrow(SealBroken);
    expect(() => open(randomBytes(32), sealed, 'commitments:c1:terms')).toThrow(SealBroken);
    for (const at of [0, 1, 13, sealed.length - 1]) {
      const altered = Buffer.from(sealed);
      altered[at] = (altered[at] as number) ^ 1;
      expect(() => open(key, altered, 'commitments:c1:terms')).toThrow(SealBroken);
    }
    expect(() => open(key, sealed.subarray(0, 20), 'commitments:c1:terms')).toThrow(SealBroken);
  });

  test('the same plaintext sealed twice differs (fresh nonce), and both open', () => {
    const a = sealText(key, 'same', 'p', nonce());
    const b = sealText(key, 'same', 'p', nonce());
    expect(a.equals(b)).toBe(false);
    expect([openText(key, a, 'p'), openText(key, b, 'p')]).toEqual(['same', 'same']);
  });

  test('keys and nonces of the wrong size are refused', () => {
    expect(() => seal(randomBytes(16), Buffer.from('x'), 'p', nonce())).toThrow(/32 bytes/);
    expect(() => seal(key, Buffer.from('x'), 'p', randomBytes(8))).toThrow(/12 bytes/);
  });
});

describe('derived keys, blind indexes and key ids', () => {
  test('derivation is deterministic per purpose and separates purposes', () => {
    expect(deriveKey(key, 'email index').equals(deriveKey(key, 'email index'))).toBe(true);
    expect(deriveKey(key, 'email index').equals(deriveKey(key, 'phone index'))).toBe(false);
  });

  test('a blind index finds equal values and depends on its key', () => {
    const indexKey = deriveKey(key, 'email index');
    expect(blindIndex(indexKey, 'ana@example.com').equals(blindIndex(indexKey, 'ana@example.com'))).toBe(
      true,
    );
    expect(blindIndex(indexKey, 'ana@example.com').equals(blindIndex(indexKey, 'ben@example.com'))).toBe(
      false,
    );
    expect(
      blindIndex(randomBytes(32), 'ana@example.com').equals(blindIndex(indexKey, 'ana@example.com')),
    ).toBe(false);
  });

  test('a key id names a key without revealing it', () => {
    expect(dataKeyId(key)).toMatch(/^[0-9a-f]{16}$/);
    expect(dataKeyId(key)).toBe(dataKeyId(Buffer.from(key)));
    expect(dataKeyId(randomBytes(32))).not.toBe(dataKeyId(key));
  });
});
