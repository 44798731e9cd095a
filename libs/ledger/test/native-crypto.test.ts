import {
  formatVerifierKey,
  parseVerifierKey,
  sha256,
  sign,
  signingKeyFromSeed,
  verifySignature,
} from '@connect/crypto';
import { sha256 as pureSha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { withNativeVerifier } from '../src/index.ts';

test('the native SHA-256 the ledger installs gives the same digests as the pure one', () => {
  const text = fc.string({ unit: 'grapheme', maxLength: 100 });
  const part = fc.oneof(fc.uint8Array({ maxLength: 300 }), text);
  fc.assert(
    fc.property(fc.array(part, { minLength: 1, maxLength: 4 }), (given) => {
      const parts = given.map((p) => (typeof p === 'string' ? new TextEncoder().encode(p) : p));
      const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let offset = 0;
      for (const part of parts) {
        joined.set(part, offset);
        offset += part.length;
      }
      expect(sha256(...given)).toEqual(pureSha256(joined));
    }),
  );
});

test('parts larger than the buffer they are joined in hash as one input too', () => {
  const big = new Uint8Array(70_000).map((_, i) => i % 251);
  const text = 'ünïcødé ✓ '.repeat(1_000);
  const bytes = Buffer.concat([Buffer.from('salt'), big, Buffer.from(text, 'utf8')]);
  expect(sha256('salt', big, text)).toEqual(pureSha256(bytes));
  expect(sha256(Uint8Array.of(1), 'a')).toEqual(pureSha256(Uint8Array.of(1, 97)));
});

test('the native Ed25519 verifier accepts what the pure signer signs and nothing else', () => {
  const key = signingKeyFromSeed('native.test/ledger', new Uint8Array(32).fill(6));
  const message = new TextEncoder().encode('native.test/ledger\n3\nroot\n');
  const signature = sign(key, message);
  const native = withNativeVerifier(key);
  expect(verifySignature(native, message, signature)).toBe(true);
  const flipped = signature.slice();
  flipped[10] = (flipped[10] as number) ^ 1;
  expect(verifySignature(native, message, flipped)).toBe(false);
  expect(
    verifySignature(withNativeVerifier(parseVerifierKey(formatVerifierKey(key))), message, signature),
  ).toBe(true);
});
