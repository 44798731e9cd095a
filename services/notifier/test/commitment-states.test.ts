// The notifier's kept states: a batch folds only the entries after them, and gets what a replay of
// the whole stream gives, whatever happened in between (entries it never saw, a batch rolled back,
// a redaction).

import { randomUUID } from 'node:crypto';
import {
  applyRecorded,
  type Commitment,
  commitmentStream,
  initialState,
  REDACTED_TITLE,
  replayRecorded,
} from '@connect/domain';
import { type BodyCipher, type Ledger, readStream, redactEntries } from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { activeCommitment, projectorLedger, registerProfile } from '../../projector/test/support.ts';
import { commitmentStates } from '../src/commitment-states.ts';

let database: TestDatabase;
let ledger: Ledger;
let alice: string;
let bob: string;

beforeAll(async () => {
  ({ database, ledger } = await projectorLedger());
  alice = await registerProfile(ledger, 'Alice');
  bob = await registerProfile(ledger, 'Bob');
});
afterAll(async () => {
  await ledger.drain();
  await database.close();
});

/** The ledger's cipher, counting the entries it is asked to open. */
function countingCipher(): { cipher: BodyCipher; opened: () => number } {
  let opened = 0;
  const cipher: BodyCipher = {
    ...ledger.cipher,
    entries(rows, origin) {
      opened += rows.length;
      return ledger.cipher.entries(rows, origin);
    },
  };
  return { cipher, opened: () => opened };
}

/** `rounds` amendments proposed by Alice and declined by Bob: two entries each; the last index. */
async function amendmentsDeclined(id: string, rounds: number): Promise<number> {
  let last = -1;
  for (let i = 0; i < rounds; i++) {
    const amendmentId = randomUUID();
    const result = await ledger.append({
      stream: commitmentStream(id),
      expectedVersion: 'any',
      actor: alice,
      events: [
        { type: 'AmendmentProposed', data: { amendmentId, userId: alice, changes: { title: `Take ${i}` } } },
        { type: 'AmendmentDeclined', data: { amendmentId, userId: bob } },
      ],
    });
    if (result.outcome !== 'appended') throw new Error(result.outcome);
    last = result.entries.at(-1)?.index as number;
  }
  return last;
}

/** The commitment's state replayed from every entry of its stream before ledger index `before`. */
async function replayed(id: string, before: number): Promise<Commitment> {
  const entries = await readStream(database.db, ledger, commitmentStream(id));
  return replayRecorded(
    initialState(id),
    entries.filter((entry) => entry.index < before),
  );
}

/** Statements the last statesBefore sent. */
let statements = 0;

async function statesBefore(
  states: ReturnType<typeof commitmentStates>,
  cipher: BodyCipher,
  ids: string[],
  before: number,
) {
  const client = await database.pool.connect();
  const query = client.query;
  statements = 0;
  client.query = ((...args: Parameters<typeof query>) => {
    statements++;
    return query.apply(client, args);
  }) as typeof query;
  try {
    return await states.before(client, cipher, ids, before);
  } finally {
    client.query = query;
    client.release();
  }
}

test('a kept state is folded on with only the entries after it, to what a whole replay gives', async () => {
  const id = await activeCommitment(ledger, alice, bob, 'Paint the fence');
  const head = await amendmentsDeclined(id, 20);
  const states = commitmentStates(applyRecorded);
  const { cipher, opened } = countingCipher();

  const first = await statesBefore(states, cipher, [id], head + 1);
  expect(first.get(id)?.state).toEqual(await replayed(id, head + 1));
  expect(first.get(id)).toMatchObject({ version: 45, index: head });
  expect(opened()).toBe(45);

  // Two rounds more: four entries read, not the 49 of the stream.
  const later = await amendmentsDeclined(id, 2);
  const next = await statesBefore(states, cipher, [id], later + 1);
  expect(opened()).toBe(45 + 4);
  // The erasure count comes with the rows: one round trip.
  expect(statements).toBe(1);
  expect(next.get(id)?.state).toEqual(await replayed(id, later + 1));
  expect(next.get(id)).toMatchObject({ version: 49, index: later });
});

test('entries appended since a state was kept are read, however many batches it missed', async () => {
  const id = await activeCommitment(ledger, alice, bob, 'Water the plants');
  const states = commitmentStates(applyRecorded);
  const { cipher } = countingCipher();
  const head = await amendmentsDeclined(id, 1);
  await statesBefore(states, cipher, [id], head + 1);

  const other = await activeCommitment(ledger, alice, bob, 'Feed the cat');
  const later = await amendmentsDeclined(id, 3);
  const both = await statesBefore(states, cipher, [id, other], later + 1);
  expect(both.get(id)?.state).toEqual(await replayed(id, later + 1));
  expect(both.get(other)?.state).toEqual(await replayed(other, later + 1));
});

test('a kept state serves the retry of its batch, never a batch from further back', async () => {
  const id = await activeCommitment(ledger, alice, bob, 'Fix the bike');
  const states = commitmentStates(applyRecorded);
  const { cipher, opened } = countingCipher();
  const middle = await amendmentsDeclined(id, 2);
  const head = await amendmentsDeclined(id, 2);
  await statesBefore(states, cipher, [id], head + 1);
  expect(opened()).toBe(13);

  // The batch from head + 1 again (its transaction rolled back): the state kept before it serves.
  const retried = await statesBefore(states, cipher, [id], head + 1);
  expect(opened()).toBe(13);
  expect(retried.get(id)?.state).toEqual(await replayed(id, head + 1));

  // A batch from further back (a rebuild from the start): the kept state is past it, so unused.
  const again = await statesBefore(states, cipher, [id], middle + 1);
  expect(again.get(id)?.state).toEqual(await replayed(id, middle + 1));
  expect(again.get(id)?.index).toBe(middle);
  expect(opened()).toBe(13 + 9);
});

test('once a body is redacted, every kept state is folded again from the ledger as it stands', async () => {
  const id = await activeCommitment(ledger, alice, bob, 'Secret surprise party');
  const states = commitmentStates(applyRecorded);
  const { cipher } = countingCipher();
  const head = await amendmentsDeclined(id, 1);
  const kept = await statesBefore(states, cipher, [id], head + 1);
  expect(kept.get(id)?.state.title).toBe('Secret surprise party');

  const [drafted] = await readStream(database.db, ledger, commitmentStream(id));
  await redactEntries(
    { db: database.db, ledger },
    { index: drafted?.index as number },
    { reason: 'erasure request', by: alice },
  );
  const later = await amendmentsDeclined(id, 1);
  const after = await statesBefore(states, cipher, [id], later + 1);
  expect(after.get(id)?.state.title).toBe(REDACTED_TITLE);
  expect(after.get(id)?.state).toEqual(await replayed(id, later + 1));
});

test('a body erased without its redaction recorded drops the kept states all the same', async () => {
  const id = await activeCommitment(ledger, alice, bob, 'Quiet birthday plans');
  const states = commitmentStates(applyRecorded);
  const { cipher } = countingCipher();
  const head = await amendmentsDeclined(id, 1);
  const kept = await statesBefore(states, cipher, [id], head + 1);
  expect(kept.get(id)?.state.title).toBe('Quiet birthday plans');

  // Erased as redactEntries erases, its EntryRedacted never appended (the process died between).
  const [drafted] = await readStream(database.db, ledger, commitmentStream(id));
  await database.pool.query(
    'update ledger_entries set data = null, salt = null, sealed = null where index = $1',
    [drafted?.index],
  );
  const after = await statesBefore(states, cipher, [id], head + 1);
  expect(after.get(id)?.state.title).toBe(REDACTED_TITLE);
});

test('beyond its capacity, the least recently kept states are dropped first', async () => {
  const ids = [
    await activeCommitment(ledger, alice, bob, 'One'),
    await activeCommitment(ledger, alice, bob, 'Two'),
    await activeCommitment(ledger, alice, bob, 'Three'),
  ];
  const states = commitmentStates(applyRecorded, 2);
  const { cipher, opened } = countingCipher();
  const head = Number.MAX_SAFE_INTEGER;
  for (const id of ids) await statesBefore(states, cipher, [id], head);
  expect(opened()).toBe(15);

  // 'One' was dropped: its five entries are read again; 'Two' and 'Three' are read from their states.
  await statesBefore(states, cipher, ids, head);
  expect(opened()).toBe(15 + 5);
});
