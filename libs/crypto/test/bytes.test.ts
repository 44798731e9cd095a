// Base64 as the ledger writes it (salts, hashes, signatures): standard, padded, canonical, and the
// same whether Node's Buffer or btoa/atob does the work.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { fromBase64, toBase64 } from '../src/index.ts';

const viaBtoa = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

describe('base64', () => {
  test('encodes as btoa does and decodes back, for any bytes and any view of them', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(8), (bytes, skip) => {
        const view = bytes.subarray(Math.min(skip, bytes.length));
        const text = toBase64(view);
        expect(text).toBe(viaBtoa(view));
        expect(fromBase64(text)).toEqual(new Uint8Array(view));
      }),
    );
  });

  test('a decoded value owns its bytes', () => {
    const bytes = fromBase64(toBase64(new Uint8Array([1, 2, 3])));
    expect(bytes.byteOffset).toBe(0);
    expect(bytes.buffer.byteLength).toBe(3);
  });

  test('refuses whitespace, missing padding, url-safe letters and non-canonical final bits', () => {
    for (const text of ['AQID ', 'AQI', 'AQ-_', 'AR==', 'AQJ='])
      expect(() => fromBase64(text), text).toThrow(TypeError);
  });
});
