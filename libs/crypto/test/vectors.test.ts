import { describe, expect, test } from 'vitest';
import {
  consistencyPlan,
  dataHash,
  type EntryHeader,
  entryLeafHash,
  formatVerifierKey,
  fromBase64,
  fromHex,
  HEADER_FIELDS,
  inclusionPlan,
  type JsonObject,
  jcsText,
  leafHash,
  leafInput,
  openCheckpoint,
  parseVerifierKey,
  rootPlan,
  signCheckpoint,
  signingKeyFromSeed,
  toBase64,
  verifyConsistency,
  verifyInclusion,
} from '../src/index.ts';
import checkpointVector from './fixtures/checkpoint.json' with { type: 'json' };
import entryVector from './fixtures/entry.json' with { type: 'json' };
import large from './fixtures/merkle-large.json' with { type: 'json' };
import small from './fixtures/merkle-small.json' with { type: 'json' };
import { MemoryTree } from './memory-tree.ts';

const b64 = (hashes: string[]) => hashes.map(fromBase64);
const smallLeaves = small.entries.map((hex) => leafHash(fromHex(hex)));
const largeLeaves = Array.from({ length: 1025 }, (_, i) => leafHash(new TextEncoder().encode(String(i))));

function rootOf(tree: MemoryTree, size: number): string {
  const plan = rootPlan(size);
  return toBase64(plan.assemble(tree.read)[0] as Uint8Array);
}

describe('merkle-small (RFC 6962 vectors)', () => {
  const tree = new MemoryTree(smallLeaves);

  test('leaf hashes', () => {
    expect(smallLeaves.map(toBase64)).toEqual(small.leafHashes);
  });

  test.each(Object.entries(small.roots))('root of size %s', (size, root) => {
    expect(rootOf(tree, Number(size))).toBe(root);
  });

  test.each(small.inclusion)('inclusion $index in $treeSize', ({ index, treeSize, proof }) => {
    expect(inclusionPlan(index, treeSize).assemble(tree.read).map(toBase64)).toEqual(proof);
    const root = fromBase64(small.roots[String(treeSize) as keyof typeof small.roots]);
    expect(
      verifyInclusion({ index, treeSize, hashes: b64(proof) }, smallLeaves[index] as Uint8Array, root),
    ).toBe(true);
  });

  test.each(small.consistency)('consistency $from → $to', ({ from, to, proof }) => {
    expect(consistencyPlan(from, to).assemble(tree.read).map(toBase64)).toEqual(proof);
    const roots = small.roots as Record<string, string>;
    const ok = verifyConsistency(
      { from, to, hashes: b64(proof) },
      fromBase64(roots[String(from)] as string),
      fromBase64(roots[String(to)] as string),
    );
    expect(ok).toBe(true);
  });

  test.each(small.mustReject)('rejects $kind: $why', (bad) => {
    const roots = small.roots as Record<string, string>;
    if (bad.kind === 'inclusion') {
      const index = bad.index as number;
      const treeSize = bad.treeSize as number;
      const leaf = smallLeaves[Math.min(index, smallLeaves.length - 1)] as Uint8Array;
      const root = fromBase64(roots[String(treeSize)] as string);
      expect(verifyInclusion({ index, treeSize, hashes: b64(bad.proof) }, leaf, root)).toBe(false);
      // Also with the leaf the proof was really made for, where that differs.
      for (const other of smallLeaves) {
        expect(verifyInclusion({ index, treeSize, hashes: b64(bad.proof) }, other, root)).toBe(false);
      }
    } else {
      const from = bad.from as number;
      const to = bad.to as number;
      const fromRoot = fromBase64(roots[String(from)] as string);
      const toRoot = fromBase64(roots[String(to)] as string);
      expect(verifyConsistency({ from, to, hashes: b64(bad.proof) }, fromRoot, toRoot)).toBe(false);
    }
  });
});

describe('merkle-large (1025 leaves)', () => {
  const tree = new MemoryTree(largeLeaves);

  test.each(Object.entries(large.roots))('root of size %s', (size, root) => {
    expect(rootOf(tree, Number(size))).toBe(root);
  });

  test.each(large.inclusion)('inclusion $index in $treeSize', ({ index, treeSize, proof }) => {
    expect(inclusionPlan(index, treeSize).assemble(tree.read).map(toBase64)).toEqual(proof);
    const root = fromBase64((large.roots as Record<string, string>)[String(treeSize)] as string);
    expect(
      verifyInclusion({ index, treeSize, hashes: b64(proof) }, largeLeaves[index] as Uint8Array, root),
    ).toBe(true);
  });

  test.each(large.consistency)('consistency $from → $to', ({ from, to, proof }) => {
    expect(consistencyPlan(from, to).assemble(tree.read).map(toBase64)).toEqual(proof);
    const roots = large.roots as Record<string, string>;
    const ok = verifyConsistency(
      { from, to, hashes: b64(proof) },
      fromBase64(roots[String(from)] as string),
      fromBase64(roots[String(to)] as string),
    );
    expect(ok).toBe(true);
  });
});

describe('entry vector', () => {
  const { entry, origin } = entryVector;
  const header: EntryHeader = { ...entry, ledger: origin, meta: entry.meta as JsonObject };

  test('dataHash is SHA-256(salt ‖ JCS(data))', () => {
    expect(dataHash(fromBase64(entry.salt), entry.data as JsonObject)).toBe(entryVector.dataHash);
  });

  test('the leaf input is JCS of exactly the header fields', () => {
    expect(new TextDecoder().decode(leafInput({ ...header, salt: 'ignored', data: {} } as EntryHeader))).toBe(
      entryVector.canonicalHeader,
    );
    const onlyHeader = Object.fromEntries(
      entryVector.headerFields.map((f) => [f, (header as unknown as JsonObject)[f]]),
    );
    expect(jcsText(onlyHeader as JsonObject)).toBe(entryVector.canonicalHeader);
    expect([...HEADER_FIELDS]).toEqual(entryVector.headerFields);
  });

  test('leaf hash', () => {
    expect(toBase64(entryLeafHash(header))).toBe(entryVector.leafHash);
  });
});

describe('checkpoint vector', () => {
  const key = signingKeyFromSeed(checkpointVector.origin, fromBase64(checkpointVector.ed25519Seed));
  const checkpoint = {
    origin: checkpointVector.origin,
    treeSize: checkpointVector.treeSize,
    rootHash: fromBase64(checkpointVector.rootHash),
  };

  test('signing gives exactly the vector note', () => {
    expect(signCheckpoint(checkpoint, key)).toBe(checkpointVector.note);
  });

  test('the verifier key is in the Go note format and parses back', () => {
    expect(formatVerifierKey(key)).toBe(checkpointVector.verifierKey);
    const parsed = parseVerifierKey(checkpointVector.verifierKey);
    expect(parsed.publicKey).toEqual(key.publicKey);
  });

  test('the vector note opens under the verifier key', () => {
    const opened = openCheckpoint(checkpointVector.note, [parseVerifierKey(checkpointVector.verifierKey)]);
    expect(opened.treeSize).toBe(8);
    expect(toBase64(opened.rootHash)).toBe(checkpointVector.rootHash);
  });

  test.each(checkpointVector.mustReject)('rejects: $why', ({ note }) => {
    expect(() => openCheckpoint(note, [parseVerifierKey(checkpointVector.verifierKey)])).toThrow();
  });

  test('rejects a note signed by another key', () => {
    const other = signingKeyFromSeed(checkpointVector.origin, new Uint8Array(32).fill(9));
    const forged = signCheckpoint(checkpoint, other);
    expect(() => openCheckpoint(forged, [parseVerifierKey(checkpointVector.verifierKey)])).toThrow(
      /no signature by a trusted key/,
    );
  });
});
