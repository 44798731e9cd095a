import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  consistencyPlan,
  type EntryHeader,
  HEADER_FIELDS,
  inclusionPlan,
  type JsonObject,
  jcsText,
  leafHash,
  leafInput,
  rootFromLeaves,
  rootPlan,
  verifyConsistency,
  verifyInclusion,
} from '../src/index.ts';
import { MemoryTree } from './memory-tree.ts';

const leaves = Array.from({ length: 300 }, (_, i) => leafHash(new TextEncoder().encode(`leaf ${i}`)));
const tree = new MemoryTree(leaves);
const rootOf = (size: number) => rootPlan(size).assemble(tree.read)[0] as Uint8Array;

function flipByte(hashes: Uint8Array[], which: number, byte: number): Uint8Array[] {
  return hashes.map((hash, i) => {
    if (i !== which) return hash;
    const copy = hash.slice();
    copy[byte] = (copy[byte] as number) ^ 0x01;
    return copy;
  });
}

describe('tree roots', () => {
  test('the root read from stored subtrees equals the root of the leaves', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), (size) => {
        expect(rootOf(size)).toEqual(rootFromLeaves(leaves.slice(0, size)));
      }),
    );
  });
});

describe('inclusion proofs', () => {
  const sizeAndIndex = fc
    .integer({ min: 1, max: 300 })
    .chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 })));

  test('verify for every index of every size', () => {
    fc.assert(
      fc.property(sizeAndIndex, ([size, index]) => {
        const hashes = inclusionPlan(index, size).assemble(tree.read);
        expect(
          verifyInclusion({ index, treeSize: size, hashes }, leaves[index] as Uint8Array, rootOf(size)),
        ).toBe(true);
      }),
    );
  });

  test('fail when any byte of the proof changes', () => {
    fc.assert(
      fc.property(sizeAndIndex, fc.nat(), fc.integer({ min: 0, max: 31 }), ([size, index], which, byte) => {
        const hashes = inclusionPlan(index, size).assemble(tree.read);
        fc.pre(hashes.length > 0);
        const bad = flipByte(hashes, which % hashes.length, byte);
        expect(
          verifyInclusion({ index, treeSize: size, hashes: bad }, leaves[index] as Uint8Array, rootOf(size)),
        ).toBe(false);
      }),
    );
  });

  // (The tree size is not checked here: the signed checkpoint binds it, and a left-edge path can
  // fold to the same root under two sizes.)
  test('fail for another leaf or another index', () => {
    fc.assert(
      fc.property(sizeAndIndex, fc.integer({ min: 0, max: 299 }), ([size, index], other) => {
        const hashes = inclusionPlan(index, size).assemble(tree.read);
        const root = rootOf(size);
        if (other !== index) {
          expect(verifyInclusion({ index, treeSize: size, hashes }, leaves[other] as Uint8Array, root)).toBe(
            false,
          );
          if (other < size) {
            expect(
              verifyInclusion({ index: other, treeSize: size, hashes }, leaves[index] as Uint8Array, root),
            ).toBe(false);
          }
        }
      }),
    );
  });
});

describe('consistency proofs', () => {
  const sizes = fc
    .integer({ min: 1, max: 300 })
    .chain((to) => fc.tuple(fc.integer({ min: 1, max: to }), fc.constant(to)));

  test('verify between any two sizes', () => {
    fc.assert(
      fc.property(sizes, ([from, to]) => {
        const hashes = consistencyPlan(from, to).assemble(tree.read);
        expect(verifyConsistency({ from, to, hashes }, rootOf(from), rootOf(to))).toBe(true);
      }),
    );
  });

  test('fail when any byte changes, or for another old root', () => {
    fc.assert(
      fc.property(sizes, fc.nat(), fc.integer({ min: 0, max: 31 }), ([from, to], which, byte) => {
        fc.pre(from < to);
        const hashes = consistencyPlan(from, to).assemble(tree.read);
        const bad = flipByte(hashes, which % hashes.length, byte);
        expect(verifyConsistency({ from, to, hashes: bad }, rootOf(from), rootOf(to))).toBe(false);
        const forkedRoot = rootFromLeaves([...leaves.slice(0, from - 1), leafHash(new Uint8Array([0xff]))]);
        expect(verifyConsistency({ from, to, hashes }, forkedRoot, rootOf(to))).toBe(false);
      }),
    );
  });
});

describe('leaf input', () => {
  // Any Unicode, lone surrogates too: JSON.stringify and the library must escape alike.
  const text = fc.string({ unit: 'binary' });
  const json = fc.jsonValue() as fc.Arbitrary<JsonObject>;
  const scalar = fc.oneof(text, fc.maxSafeInteger(), fc.constant(null));
  const header = fc.record({
    ledger: text,
    index: fc.maxSafeNat(),
    id: text,
    stream: text,
    version: fc.maxSafeNat(),
    type: text,
    schema: fc.nat(),
    recordedAt: text,
    actor: fc.option(text),
    meta: fc.dictionary(text, json),
    dataHash: text,
  });
  const library = (h: object) => {
    const fields: Record<string, unknown> = {};
    for (const field of HEADER_FIELDS) fields[field] = (h as Record<string, unknown>)[field];
    return new TextEncoder().encode(canonicalize(fields));
  };

  test('is the JCS of the header fields, extra fields or not, meta given or not', () => {
    fc.assert(
      fc.property(header, json, (h, extra) => {
        expect(leafInput(h)).toEqual(library(h));
        expect(leafInput({ ...h, data: extra } as EntryHeader, jcsText(h.meta))).toEqual(library(h));
      }),
    );
  });

  test('is still the JCS when a field is not what the ledger writes', () => {
    fc.assert(
      fc.property(
        header,
        fc.constantFrom(...HEADER_FIELDS),
        fc.oneof(scalar, json, fc.double()),
        (h, field, value) => {
          const odd = { ...h, [field]: value } as unknown as EntryHeader;
          let expected: Uint8Array;
          try {
            expected = library(odd);
          } catch {
            expect(() => leafInput(odd)).toThrow();
            return;
          }
          expect(leafInput(odd)).toEqual(expected);
        },
      ),
    );
  });
});
