import { createHash, generateKeyPairSync } from 'node:crypto';
// Everything the service serves, checked by a verifier written from LEDGER.md alone
// (test/interop/ledger-verifier.ts imports nothing from this repository).
import { afterAll, beforeAll, expect, test } from 'vitest';
import checkpointVector from '../../../libs/crypto/test/fixtures/checkpoint.json' with { type: 'json' };
import streamHeadVector from '../../../libs/crypto/test/fixtures/stream-head.json' with { type: 'json' };
import {
  checkReceipt,
  consistencyHolds,
  dataHashHolds,
  inclusionHolds,
  leafHash,
  openCheckpoint,
  openStreamHead,
  parseVerifierKey,
  receiptHolds,
} from '../../../test/interop/ledger-verifier.ts';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { replayReceipt } from '../src/receipt-state.ts';
import { CHECKS, type RefusedCase, refusedReceipts } from './receipt-cases.ts';

let s: Stack;
let ana: Account;
let id: string;
let last = 0;

beforeAll(async () => {
  s = await testStack();
  ana = await signUp(s.app, 'Ana');
  const ben = await signUp(s.app, 'Ben');
  const post = async (who: Account, url: string, payload: object = {}) => {
    const receipt = (await s.app.inject({ method: 'POST', url, payload, headers: who.auth })).json();
    last = Math.max(last, receipt.events.at(-1).index);
    return receipt;
  };
  id = (
    await post(ana, '/v1/commitments', {
      type: 'financial',
      title: 'Loan',
      amount: { minor: 125000, currency: 'EUR' },
      dueAt: '2030-01-01T00:00:00.000Z',
    })
  ).commitmentId;
  await post(ana, `/v1/commitments/${id}/update`, { terms: 'Zurück bis Januar — “in full” 🙂' });
  await post(ana, `/v1/commitments/${id}/invite`, { userId: ben.userId, role: 'participant' });
  await post(ana, `/v1/commitments/${id}/propose`);
  await post(ben, `/v1/commitments/${id}/accept`);
});
afterAll(() => s.close());

const get = async (url: string) =>
  await s.app.inject({ method: 'GET', url, headers: { ...ana.auth, 'connect-min-index': String(last) } });

test('accepts the receipt, entries, proofs and checkpoints the service serves', async () => {
  const key = (await get('/v1/ledger/key')).json().verifierKey as string;
  const trusted = parseVerifierKey(key);
  const receipt = (await get(`/v1/commitments/${id}/receipt`)).json();
  expect(receiptHolds(receipt, key)).toBe(true);
  // With the domain's rules given, the state check is made too; without, it says it was not.
  expect(checkReceipt(receipt, key, replayReceipt)).toEqual({ holds: true, failed: [], notMade: [] });
  expect(checkReceipt(receipt, key).notMade).toEqual([
    '5. state is what the entries replay to (no domain rules here)',
  ]);
  const head = openStreamHead(receipt.streamHead, trusted);
  expect(head).toMatchObject({
    stream: `commitment-${id}`,
    version: receipt.entries.length,
    index: receipt.entries.at(-1).index,
    treeSize: receipt.entries[0].proof.treeSize,
  });

  const note = (await get('/v1/ledger/checkpoint')).body;
  const checkpoint = openCheckpoint(note, trusted);
  expect(checkpoint?.treeSize).toBeGreaterThan(last);
  for (const { index } of receipt.entries) {
    const entry = (await get(`/v1/ledger/entries/${index}`)).json();
    expect(dataHashHolds(entry)).toBe(true);
    expect(leafHash(entry).toString('base64')).toBe(entry.leafHash);
    const proof = (
      await get(`/v1/ledger/proofs/inclusion?index=${index}&treeSize=${checkpoint?.treeSize}`)
    ).json();
    expect(
      inclusionHolds(index, proof.treeSize, leafHash(entry), proof.hashes, checkpoint?.root as Buffer),
    ).toBe(true);
  }

  const older = openCheckpoint(receipt.checkpoint, trusted);
  const growth = await s.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'More' },
    headers: ana.auth,
  });
  last = growth.json().events[0].index;
  const newer = openCheckpoint((await get('/v1/ledger/checkpoint')).body, trusted);
  const consistency = (
    await get(`/v1/ledger/proofs/consistency?from=${older?.treeSize}&to=${newer?.treeSize}`)
  ).json();
  expect(
    consistencyHolds(
      older?.treeSize as number,
      newer?.treeSize as number,
      older?.root as Buffer,
      newer?.root as Buffer,
      consistency.hashes,
    ),
  ).toBe(true);
});

test('rejects doctored ones', async () => {
  const key = (await get('/v1/ledger/key')).json().verifierKey as string;
  const receipt = (await get(`/v1/commitments/${id}/receipt`)).json();
  const doctor = (change: (copy: typeof receipt) => void) => {
    const copy = structuredClone(receipt);
    change(copy);
    return receiptHolds(copy, key);
  };
  expect(
    doctor((r) => {
      r.entries[0].data.amount.minor = 12500;
    }),
  ).toBe(false);
  expect(
    doctor((r) => {
      r.entries[1].actor = 'someone-else';
    }),
  ).toBe(false);
  expect(
    doctor((r) => {
      [r.entries[1], r.entries[2]] = [r.entries[2], r.entries[1]];
    }),
  ).toBe(false);
  expect(
    doctor((r) => {
      r.entries.splice(2, 1);
    }),
  ).toBe(false);
  expect(
    doctor((r) => {
      r.entries[3].proof.hashes[0] = Buffer.alloc(32).toString('base64');
    }),
  ).toBe(false);
  expect(
    doctor((r) => {
      r.checkpoint = r.checkpoint.replace(/\n(\d+)\n/, (_: string, n: string) => `\n${Number(n) - 1}\n`);
    }),
  ).toBe(false);
  // Another key under the same name: its signature is not there, so nothing verifies.
  const publicKey = generateKeyPairSync('ed25519')
    .publicKey.export({ format: 'der', type: 'spki' })
    .subarray(12);
  const name = key.slice(0, key.indexOf('+'));
  const keyId = createHash('sha256')
    .update(name)
    .update(Buffer.from([0x0a, 0x01]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
  const stranger = `${name}+${keyId.toString('hex')}+${Buffer.concat([Buffer.from([1]), publicKey]).toString('base64')}`;
  expect(receiptHolds(receipt, stranger)).toBe(false);
});

// The step of the independent verifier that each refused receipt fails.
const STEPS: Record<RefusedCase, string> = {
  cutOff: '4. stream head names the stream, and its last entry’s version and index',
  editedState: '5. state is what the entries replay to',
  otherStream: '4. stream head names the stream, and its last entry’s version and index',
  otherTreeSize: '4. stream head for the checkpoint’s size and root',
  otherKey: '4. stream head signed by the trusted key',
};

test.each(Object.keys(CHECKS) as RefusedCase[])('refuses a receipt with %s', async (name) => {
  const key = (await get('/v1/ledger/key')).json().verifierKey as string;
  const receipt = (await get(`/v1/commitments/${id}/receipt`)).json();
  const bundle = refusedReceipts(receipt, s.command.ledger.key)[name];
  const result = checkReceipt(bundle, key, replayReceipt);
  expect(result.holds).toBe(false);
  expect(result.failed).toContain(STEPS[name]);
  // Entries cut off also no longer replay to the state; an unsigned head proves nothing of its content.
  if (name !== 'cutOff' && name !== 'otherKey') expect(result.failed).toEqual([STEPS[name]]);
});

test('without a trusted key it verifies nothing', async () => {
  const receipt = (await get(`/v1/commitments/${id}/receipt`)).json();
  expect(checkReceipt(receipt, undefined, replayReceipt)).toEqual({
    holds: false,
    failed: ['1. no trusted key: nothing verified'],
    notMade: [],
  });
});

test('the stream-head vector: it opens the note, refuses every mustReject, and keeps checkpoints apart', () => {
  const trusted = parseVerifierKey(streamHeadVector.verifierKey);
  expect(openStreamHead(streamHeadVector.note, trusted)).toMatchObject({
    origin: streamHeadVector.origin,
    stream: streamHeadVector.stream,
    version: streamHeadVector.version,
    index: streamHeadVector.index,
    treeSize: streamHeadVector.treeSize,
  });
  for (const { note, why } of streamHeadVector.mustReject)
    expect(openStreamHead(note, trusted), why).toBeNull();
  expect(openCheckpoint(streamHeadVector.note, trusted)).toBeNull();
  expect(openStreamHead(checkpointVector.note, trusted)).toBeNull();
  expect(openCheckpoint(checkpointVector.note, trusted)?.treeSize).toBe(8);
});
