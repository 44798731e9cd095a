// The notifier as a projection: its checkpoint, batching across a commitment's entries, and the
// seam where other channels enqueue deliveries in the same transaction.

import { randomUUID } from 'node:crypto';
import { openNotificationTexts } from '@connect/db';
import { commitmentStream, PROFILE_UPDATED, profileStream } from '@connect/domain';
import { type BodyCipher, type Entry, type Ledger, readStream, redactEntries } from '@connect/ledger';
import { replayProjection, startProjector } from '@connect/projector';
import type { FastifyBaseLogger } from 'fastify';
import type pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { activeCommitment, ORIGIN, projectorLedger, registerProfile } from '../../projector/test/support.ts';
import type { Notification } from '../src/notification.ts';
import { displayNames, openNotifier } from '../src/projection.ts';

const quiet = { info() {}, warn() {}, error() {} } as unknown as FastifyBaseLogger;
let database: TestDatabase;
let ledger: Ledger;

beforeAll(async () => {
  ({ database, ledger } = await projectorLedger());
});
afterAll(async () => {
  await ledger.drain();
  await database.close();
});

async function notifierAtHead(): Promise<boolean> {
  const { rows } = await database.pool.query<{ behind: boolean }>(
    `select last_index < (select tree_size - 1 from ledger_head) as behind
       from projection_checkpoints where projection = 'notifications'`,
  );
  return rows[0]?.behind === false;
}

test('from its first run on, each event becomes notifications, enqueued in the same transaction, once', async () => {
  const alice = await registerProfile(ledger, 'Alice');
  const bob = await registerProfile(ledger, 'Bob');
  await activeCommitment(ledger, alice, bob, 'Before the notifier');

  const enqueued: Notification[] = [];
  const visibleWhenEnqueued: boolean[] = [];
  const notifier = await openNotifier(database.pool, {
    appUrl: 'https://app.example.com',
    async enqueue(client, notifications) {
      const { rows } = await client.query<{ n: number }>(
        'select count(*)::int as n from notifications where id = any($1)',
        [notifications.map((n) => n.id)],
      );
      visibleWhenEnqueued.push(rows[0]?.n === notifications.length);
      enqueued.push(...notifications);
    },
  });
  const id = await activeCommitment(ledger, alice, bob, 'Lend a bike');

  // Batches of two: a commitment's later entries are applied to the state its earlier ones left.
  const projector = startProjector(
    { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, log: quiet },
    { projections: [notifier], batchSize: 2, pollMs: 50 },
  );
  await expect.poll(notifierAtHead, { timeout: 15_000, interval: 25 }).toBe(true);
  await projector.close();

  const stored = await database.pool.query(
    'select id, recipient_id, kind, sealed, link, commitment_id from notifications order by ledger_index',
  );
  const texts = await openNotificationTexts(
    ledger.cipher.fields,
    stored.rows.map((row) => ({ ...row, recipientId: row.recipient_id })),
  );
  const rows = stored.rows.map((row, i) => ({ ...row, title: texts[i]?.title }));
  // The fixture appends every event as the creator: the acceptance is hers, so she hears nothing.
  expect(rows.map((row) => [row.recipient_id, row.kind, row.title])).toEqual([
    [bob, 'invitation', 'Alice invited you to “Lend a bike”'],
    [bob, 'lifecycle', 'Alice proposed “Lend a bike”'],
    [bob, 'lifecycle', '“Lend a bike” is active'],
  ]);
  expect(rows.every((row) => row.commitment_id === id)).toBe(true);
  expect(rows[0]?.link).toBe(`https://app.example.com/commitments/${id}`);
  expect(enqueued.map((n) => n.id).sort()).toEqual(rows.map((row) => row.id).sort());
  expect(visibleWhenEnqueued.every(Boolean)).toBe(true);

  // A rebuild replays the whole ledger (the commitment from before the first run too) into the
  // same rows, and delivers nothing again.
  const replayed = await replayProjection(
    { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher },
    notifier,
  );
  expect(replayed.quarantined).toEqual([]);
  const again = await database.pool.query<{ id: string }>('select id from notifications');
  expect(again.rows.map((row) => row.id)).toEqual(expect.arrayContaining(rows.map((row) => row.id)));
  expect(again.rows).toHaveLength(2 * rows.length);
  expect(enqueued).toHaveLength(rows.length);
});

/** Cancels the commitment as `actor`; its entry. */
async function cancel(id: string, actor: string): Promise<Entry> {
  const result = await ledger.append({
    stream: commitmentStream(id),
    expectedVersion: 'any',
    actor,
    events: [{ type: 'CommitmentCancelled', data: {} }],
  });
  if (result.outcome !== 'appended') throw new Error(result.outcome);
  return result.entries[0] as Entry;
}

/** The titles of the commitment's notifications from ledger index `index`. */
async function titlesAt(id: string, index: number): Promise<(string | undefined)[]> {
  const stored = await database.pool.query(
    'select id, recipient_id, sealed from notifications where commitment_id = $1 and ledger_index = $2',
    [id, index],
  );
  const texts = await openNotificationTexts(
    ledger.cipher.fields,
    stored.rows.map((row) => ({ ...row, recipientId: row.recipient_id })),
  );
  return texts.map((text) => text?.title);
}

test('a notification after a redaction carries what the ledger holds now, not what the notifier saw', async () => {
  const alice = await registerProfile(ledger, 'Alice');
  const bob = await registerProfile(ledger, 'Bob');
  const notifier = await openNotifier(database.pool, { appUrl: 'https://app.example.com' });
  const projector = startProjector(
    { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, log: quiet },
    { projections: [notifier], batchSize: 2, pollMs: 50 },
  );
  try {
    const id = await activeCommitment(ledger, alice, bob, 'Surprise party for Carol');
    await expect.poll(notifierAtHead, { timeout: 15_000, interval: 25 }).toBe(true);

    const [drafted] = await readStream(database.db, ledger, commitmentStream(id));
    await redactEntries(
      { db: database.db, ledger },
      { index: drafted?.index as number },
      { reason: 'erasure request', by: alice },
    );
    const cancelled = await cancel(id, alice);
    await expect.poll(notifierAtHead, { timeout: 15_000, interval: 25 }).toBe(true);

    expect(await titlesAt(id, cancelled.index)).toEqual(['“(redacted)” was cancelled']);
  } finally {
    await projector.close();
  }
});

test('a body erased while its batch is under way is not carried into the batches after it', async () => {
  const alice = await registerProfile(ledger, 'Alice');
  const bob = await registerProfile(ledger, 'Bob');
  const notifier = await openNotifier(database.pool, { appUrl: 'https://app.example.com' });
  const tables = { notifications: 'notifications' };
  const id = await activeCommitment(ledger, alice, bob, 'Plans for the reunion');
  // The batch's entries, opened as the projector's claim opens them; then the first is erased
  // (a redaction, its record not yet appended) before the notifier gets to them.
  const batch = await readStream(database.db, ledger, commitmentStream(id));
  await database.pool.query(
    'update ledger_entries set data = null, salt = null, sealed = null where index = $1',
    [batch[0]?.index],
  );
  const client = await database.pool.connect();
  try {
    await notifier.apply(client, batch, tables, ledger.cipher);
    const cancelled = await cancel(id, alice);
    await notifier.apply(client, [cancelled], tables, ledger.cipher);

    expect(await titlesAt(id, cancelled.index)).toEqual(['“(redacted)” was cancelled']);
  } finally {
    client.release();
  }
});

test('a name is the one its user stated last: after many changes the newest, and an erased newest leaves no older one', async () => {
  const carol = await registerProfile(ledger, 'Carol');
  const renames = ['Carol B', 'Carol C', 'Carol D'];
  for (const [i, displayName] of renames.entries()) {
    const result = await ledger.append({
      stream: profileStream(carol),
      expectedVersion: i + 1,
      actor: carol,
      events: [{ type: PROFILE_UPDATED, data: { userId: carol, displayName, avatarUrl: null } }],
    });
    expect(result.outcome).toBe('appended');
  }
  const dave = await registerProfile(ledger, 'Dave');
  // The rows read are opened through the cipher: one a user, however often they changed.
  const opened: number[] = [];
  const cipher: BodyCipher = {
    ...ledger.cipher,
    entries: (rows, origin) => {
      opened.push(rows.length);
      return ledger.cipher.entries(rows, origin);
    },
  };
  const names = (userIds: string[]) => withClient((client) => displayNames(client, cipher, userIds));

  expect(await names([carol, dave, randomUUID()])).toEqual(
    new Map([
      [carol, 'Carol D'],
      [dave, 'Dave'],
    ]),
  );
  expect(opened).toEqual([2]);

  const newest = (await readStream(database.db, ledger, profileStream(carol))).at(-1);
  await redactEntries(
    { db: database.db, ledger },
    { index: newest?.index as number },
    { reason: 'erasure request', by: carol },
  );
  expect(await names([carol, dave])).toEqual(new Map([[dave, 'Dave']]));
});

async function withClient<T>(use: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await database.pool.connect();
  try {
    return await use(client);
  } finally {
    client.release();
  }
}
