// verifyReceipt on a receipt built in memory: what LEDGER.md "Verifying a commitment" asks, each
// failure named by its check.
import { describe, expect, test } from 'vitest';
import {
  dataHash,
  entryLeafHash,
  formatVerifierKey,
  inclusionPlan,
  NO_TRUSTED_KEY,
  type ProvenEntry,
  parseVerifierKey,
  type ReceiptBundle,
  rootPlan,
  STATE_CHECK,
  signCheckpoint,
  signingKeyFromSeed,
  signStreamHead,
  toBase64,
  verifyReceipt,
} from '../src/index.ts';
import { MemoryTree } from './memory-tree.ts';

const ORIGIN = 'crypto.test/ledger';
const KEY = signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(5));
const TRUSTED = parseVerifierKey(formatVerifierKey(KEY));
const STREAM = 'commitment-x';
const SIZE = 16;

// Entries 0..15: even indexes are the receipt's stream (versions 1..8, the last at index 14).
const entries = Array.from({ length: SIZE }, (_, index) => {
  const salt = new Uint8Array(16).fill(index);
  const data = { i: index };
  const stream = index % 2 === 0 ? STREAM : 'other';
  const header = {
    ledger: ORIGIN,
    index,
    id: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
    stream,
    version: Math.floor(index / 2) + 1,
    type: 'Noted',
    schema: 1,
    recordedAt: new Date(Date.UTC(2030, 0, 1, 0, 0, index)).toISOString(),
    actor: 'ana',
    meta: {},
    dataHash: dataHash(salt, data),
  };
  return {
    ...header,
    data,
    salt: toBase64(salt),
    redacted: false,
    leafHash: toBase64(entryLeafHash(header)),
  };
});
const tree = new MemoryTree(entries.map((e) => entryLeafHash(e)));
const rootOf = (size: number) => rootPlan(size).assemble(tree.read)[0] as Uint8Array;

/** The domain's rules of this test: a stream replays to how many events and the sum of their i. */
const replay = (list: ProvenEntry[]) => ({
  events: list.length,
  sum: list.reduce((sum, e) => sum + ((e.data?.i as number | undefined) ?? 0), 0),
});

const proven = entries
  .filter((e) => e.stream === STREAM)
  .map((e) => ({
    ...e,
    proof: {
      index: e.index,
      treeSize: SIZE,
      hashes: inclusionPlan(e.index, SIZE).assemble(tree.read).map(toBase64),
    },
  }));
const head = {
  origin: ORIGIN,
  stream: STREAM,
  version: 8,
  index: 14,
  treeSize: SIZE,
  rootHash: rootOf(SIZE),
};
const receipt: ReceiptBundle = {
  origin: ORIGIN,
  verifierKey: formatVerifierKey(KEY),
  checkpoint: signCheckpoint({ origin: ORIGIN, treeSize: SIZE, rootHash: rootOf(SIZE) }, KEY),
  streamHead: signStreamHead(head, KEY),
  entries: proven,
  state: replay(proven),
};

const copy = (change: (bundle: ReceiptBundle) => void = () => {}): ReceiptBundle => {
  const bundle = structuredClone(receipt);
  change(bundle);
  return bundle;
};
const failing = (bundle: unknown) =>
  verifyReceipt(bundle, TRUSTED, { replay })
    .checks.filter((c) => !c.ok)
    .map((c) => c.name);
const HEAD_SIGNED = 'stream head is signed by the key';
const HEAD_TREE = 'stream head is for the checkpoint’s tree size and root';
const HEAD_STREAM = 'stream head names the receipt’s stream';
const HEAD_LAST = 'stream head’s latest entry is the receipt’s last (version and index)';

describe('a complete, bound receipt', () => {
  test('verifies: key, checkpoint, every entry, the stream head, and the replayed state', () => {
    const result = verifyReceipt(receipt, TRUSTED, { replay });
    expect(result.checks.filter((c) => !c.ok)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(result.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([HEAD_SIGNED, HEAD_TREE, HEAD_STREAM, HEAD_LAST, STATE_CHECK]),
    );
  });

  test('without the domain’s rules the replay is reported as not made, and counts neither way', () => {
    const result = verifyReceipt(receipt, TRUSTED);
    expect(result.valid).toBe(true);
    expect(result.checks.filter((c) => c.notMade)).toEqual([
      { name: STATE_CHECK, ok: false, notMade: true, detail: expect.stringMatching(/^not made/) },
    ]);
    expect(
      verifyReceipt(
        copy((r) => {
          r.state = { events: 1 };
        }),
        TRUSTED,
      ).valid,
    ).toBe(true);
  });

  test('without a trusted key nothing is verified, not even against the key inside the bundle', () => {
    for (const bundle of [receipt, null, {}]) {
      const result = verifyReceipt(bundle, undefined, { replay });
      expect(result).toEqual({
        valid: false,
        checks: [{ name: 'a trusted verifier key is given', ok: false, detail: NO_TRUSTED_KEY }],
      });
    }
  });
});

describe('what a receipt cannot hide', () => {
  test('entries cut off the end (the last three) fail at the stream head, and the state no longer replays', () => {
    const cut = copy((r) => {
      r.entries.splice(-3);
    });
    expect(failing(cut)).toEqual([HEAD_LAST, STATE_CHECK]);
    const detail = verifyReceipt(cut, TRUSTED, { replay }).checks.find((c) => c.name === HEAD_LAST)?.detail;
    expect(detail).toBe(
      "the stream's latest is version 8 at index 14; the receipt ends at version 5 (index 8)",
    );
    // Even with a state that replays from what is left, the stream head gives it away.
    const consistent = copy((r) => {
      r.entries.splice(-3);
      r.state = replay(r.entries);
    });
    expect(failing(consistent)).toEqual([HEAD_LAST]);
  });

  test('an edited state fails the replay check, naming the field', () => {
    const edited = copy((r) => {
      (r.state as { sum: number }).sum += 1;
    });
    expect(failing(edited)).toEqual([STATE_CHECK]);
    expect(verifyReceipt(edited, TRUSTED, { replay }).checks.at(-1)?.detail).toBe(
      'the state differs from the replay in sum',
    );
    expect(
      failing(
        copy((r) => {
          delete r.state;
        }),
      ),
    ).toEqual([STATE_CHECK]);
    const throwing = verifyReceipt(receipt, TRUSTED, {
      replay: () => {
        throw new Error('unknown event type Noted');
      },
    });
    expect(throwing.checks.at(-1)).toMatchObject({
      name: STATE_CHECK,
      ok: false,
      detail: 'unknown event type Noted',
    });
  });

  test('a stream head for another stream', () => {
    const other = copy((r) => {
      r.streamHead = signStreamHead({ ...head, stream: 'commitment-y' }, KEY);
    });
    expect(failing(other)).toEqual([HEAD_STREAM]);
  });

  test('a stream head for another tree size, or another root', () => {
    const smaller = copy((r) => {
      r.streamHead = signStreamHead({ ...head, treeSize: SIZE - 1, rootHash: rootOf(SIZE - 1) }, KEY);
    });
    expect(failing(smaller)).toEqual([HEAD_TREE]);
    const otherRoot = copy((r) => {
      r.streamHead = signStreamHead({ ...head, rootHash: rootOf(SIZE - 1) }, KEY);
    });
    expect(failing(otherRoot)).toEqual([HEAD_TREE]);
  });

  test('a stream head signed by another key, missing, or a checkpoint in its place', () => {
    const stranger = signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(9));
    expect(
      failing(
        copy((r) => {
          r.streamHead = signStreamHead(head, stranger);
        }),
      ),
    ).toEqual([HEAD_SIGNED]);
    const missing = copy((r) => {
      delete (r as Partial<ReceiptBundle>).streamHead;
    });
    expect(failing(missing)).toEqual([HEAD_SIGNED]);
    expect(
      failing(
        copy((r) => {
          r.streamHead = r.checkpoint;
        }),
      ),
    ).toEqual([HEAD_SIGNED]);
  });

  test('a receipt of another key entirely is refused under the trusted one', () => {
    const stranger = signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(9));
    const forged = copy((r) => {
      r.verifierKey = formatVerifierKey(stranger);
      r.checkpoint = signCheckpoint({ origin: ORIGIN, treeSize: SIZE, rootHash: rootOf(SIZE) }, stranger);
      r.streamHead = signStreamHead(head, stranger);
    });
    expect(failing(forged)).toEqual(
      expect.arrayContaining([
        'verifier key is the trusted key',
        'checkpoint is signed by the key',
        HEAD_SIGNED,
      ]),
    );
  });

  test('junk is refused, not crashed on', () => {
    for (const junk of [null, 'x', 42, {}, { entries: 'no' }, { ...receipt, entries: [null, 1] }])
      expect(verifyReceipt(junk, TRUSTED, { replay }).valid).toBe(false);
  });
});
