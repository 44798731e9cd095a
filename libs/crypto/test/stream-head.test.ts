import { describe, expect, test } from 'vitest';
import {
  formatVerifierKey,
  fromBase64,
  openCheckpoint,
  openStreamHead,
  parseVerifierKey,
  signingKeyFromSeed,
  signStreamHead,
  streamHeadText,
  toBase64,
} from '../src/index.ts';
import checkpointVector from './fixtures/checkpoint.json' with { type: 'json' };
import vector from './fixtures/stream-head.json' with { type: 'json' };

const key = signingKeyFromSeed(vector.origin, fromBase64(vector.ed25519Seed));
const trusted = [parseVerifierKey(vector.verifierKey)];
const head = {
  origin: vector.origin,
  stream: vector.stream,
  version: vector.version,
  index: vector.index,
  treeSize: vector.treeSize,
  rootHash: fromBase64(vector.rootHash),
};

describe('stream head vector', () => {
  test('signing gives exactly the vector note (Ed25519 is deterministic)', () => {
    expect(formatVerifierKey(key)).toBe(vector.verifierKey);
    expect(signStreamHead(head, key)).toBe(vector.note);
    expect(vector.note.startsWith(streamHeadText(head))).toBe(true);
  });

  test('it is for the tree of checkpoint.json, under the same key', () => {
    expect(vector.verifierKey).toBe(checkpointVector.verifierKey);
    const checkpoint = openCheckpoint(checkpointVector.note, trusted);
    expect(checkpoint.treeSize).toBe(vector.treeSize);
    expect(toBase64(checkpoint.rootHash)).toBe(vector.rootHash);
  });

  test('the vector note opens under the verifier key', () => {
    const opened = openStreamHead(vector.note, trusted);
    expect({ ...opened, rootHash: toBase64(opened.rootHash) }).toEqual({
      ...head,
      rootHash: vector.rootHash,
    });
  });

  test.each(vector.mustReject)('rejects: $why', ({ note }) => {
    expect(() => openStreamHead(note, trusted)).toThrow();
  });

  test('a checkpoint parser rejects the stream head, and a stream-head parser the checkpoint', () => {
    expect(() => openCheckpoint(vector.note, trusted)).toThrow(/three lines/);
    expect(() => openStreamHead(checkpointVector.note, trusted)).toThrow(/seven lines/);
  });

  test('a stream head signed by another key under the same name is refused', () => {
    const other = signingKeyFromSeed(vector.origin, new Uint8Array(32).fill(9));
    expect(() => openStreamHead(signStreamHead(head, other), trusted)).toThrow(
      /no signature by a trusted key/,
    );
  });

  test('nothing that cannot be true is signed: an entry outside the tree, version 0, another origin', () => {
    expect(() => signStreamHead({ ...head, index: 8 }, key)).toThrow(/in the tree/);
    expect(() => signStreamHead({ ...head, version: 0 }, key)).toThrow(/at least 1/);
    expect(() => signStreamHead({ ...head, version: 9 }, key)).toThrow(/index of at least/);
    expect(() => signStreamHead({ ...head, origin: 'elsewhere' }, key)).toThrow(/origin/);
  });
});
