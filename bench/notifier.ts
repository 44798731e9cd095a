// npm run bench -- notifier: what the notifier's work for an event costs as its commitment's
// history grows. For each history length of BENCH_NOTIFIER_HISTORIES (default 5,201 entries),
// BENCH_NOTIFIER_COMMITMENTS (200) active commitments of that length are amended
// BENCH_NOTIFIER_ROUNDS (20) times (a proposal and its decline: two events); the notifier, alone,
// then catches up with them in batches of BENCH_NOTIFIER_BATCH (64) entries, about what it takes
// at a time from a busy live ledger. It has followed each commitment before (one round, not
// timed), as a running service has.
//   notifier.events_per_s_history_<n>  events turned into notifications a second
//   notifier.history_ratio             the longest history's rate ÷ the shortest's: 1 when an
//                                      event's work does not grow with its commitment's history
// Then the shortest history is measured once more, and again after both users have renamed
// themselves BENCH_NOTIFIER_RENAMES (100) times (ProfileUpdated; 0: not measured):
//   notifier.events_per_s_renamed_<n> events a second, the users having renamed themselves n times
//   notifier.renames_ratio             that rate ÷ the rate just before the renames: 1 when naming
//                                      people does not grow with their profiles' history
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { signingKeyFromSeed } from '@connect/crypto';
import { keyRing, localMasterKeys } from '@connect/db';
import {
  commitmentStream,
  DEFAULT_TYPES,
  PROFILE_REGISTERED,
  PROFILE_UPDATED,
  profileStream,
} from '@connect/domain';
import { bodyCipher, type Ledger, type NewEvent, openLedger, withNativeSigner } from '@connect/ledger';
import { openNotifier } from '@connect/notifier';
import { type Projection, startProjector } from '@connect/projector';
import type { FastifyBaseLogger } from 'fastify';
import { activatedEvents } from '../test/support/commitment-events.ts';
import { benchDatabase, type Metrics, round } from './support.ts';

const HISTORIES = (process.env.BENCH_NOTIFIER_HISTORIES ?? '5,201').split(',').map(Number);
const COMMITMENTS = Number(process.env.BENCH_NOTIFIER_COMMITMENTS ?? 200);
const ROUNDS = Number(process.env.BENCH_NOTIFIER_ROUNDS ?? 20);
const BATCH = Number(process.env.BENCH_NOTIFIER_BATCH ?? 64);
const RENAMES = Number(process.env.BENCH_NOTIFIER_RENAMES ?? 100);
const ORIGIN = 'bench.connect.local/ledger';
const quiet = { info() {}, warn() {}, error() {} } as unknown as FastifyBaseLogger;

/** An amendment the creator proposes and the participant declines: two events. */
function amendmentDeclined(creator: string, participant: string, round: number): NewEvent[] {
  const amendmentId = randomUUID();
  return [
    {
      type: 'AmendmentProposed',
      data: { amendmentId, userId: creator, changes: { title: `Take ${round}` } },
    },
    { type: 'AmendmentDeclined', data: { amendmentId, userId: participant } },
  ];
}

/** Runs `work` over `items`, 64 at a time. */
async function inParallel<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += 64) await Promise.all(items.slice(i, i + 64).map(work));
}

async function append(ledger: Ledger, stream: string, actor: string | null, events: NewEvent[]) {
  const result = await ledger.append({ stream, expectedVersion: 'any', actor, events });
  if (result.outcome !== 'appended') throw new Error(`append: ${result.outcome}`);
}

export async function benchNotifier(): Promise<Metrics> {
  if (HISTORIES.some((n) => !Number.isInteger(n) || n < 5 || n % 2 === 0))
    throw new Error('BENCH_NOTIFIER_HISTORIES: odd whole numbers of at least 5 (five events, then pairs)');
  if (!Number.isInteger(RENAMES) || RENAMES < 0)
    throw new Error('BENCH_NOTIFIER_RENAMES: a whole number of at least 0');
  const database = await benchDatabase(24);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-bench-notifier-'));
  await chmod(dataDir, 0o700);
  try {
    const keys = keyRing(database.pool, await localMasterKeys({ dataDir }), { listen: false });
    const ledger = await openLedger({
      pool: database.pool,
      db: database.db,
      origin: ORIGIN,
      key: withNativeSigner(signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(45))),
      cipher: bodyCipher(keys, { sealNew: true }),
    });
    await append(
      ledger,
      'commitment-types',
      null,
      DEFAULT_TYPES.map((type) => ({ type: 'CommitmentTypeDefined', data: { ...type } })),
    );
    const [creator, participant] = [randomUUID(), randomUUID()] as [string, string];
    const people = [
      [creator, 'Ada'],
      [participant, 'Ben'],
    ] as const;
    for (const [userId, name] of people)
      await append(ledger, profileStream(userId), userId, [
        { type: PROFILE_REGISTERED, data: { userId, displayName: name } },
      ]);

    const notifier = await openNotifier(database.pool, { appUrl: 'https://app.bench.test' });
    /** Events a second the notifier turns into notifications, for commitments of `history` entries. */
    async function eventsPerSecond(history: number): Promise<number> {
      const ids = Array.from({ length: COMMITMENTS }, () => randomUUID());
      await inParallel(ids, async (id) => {
        await append(
          ledger,
          commitmentStream(id),
          creator,
          activatedEvents(creator, participant, 'Help me move'),
        );
        for (let done = 5; done < history; done += 2)
          await append(ledger, commitmentStream(id), creator, amendmentDeclined(creator, participant, done));
      });
      const amendAll = (round: number) =>
        inParallel(ids, (id) =>
          append(ledger, commitmentStream(id), creator, amendmentDeclined(creator, participant, round)),
        );
      // The notifier follows these commitments once, then catches up with ROUNDS more of each.
      await amendAll(-1);
      await catchUp(database.pool, ledger, notifier);
      for (let round = 0; round < ROUNDS; round++) await amendAll(round);
      const events = ROUNDS * 2 * COMMITMENTS;
      const seconds = await catchUp(database.pool, ledger, notifier);
      console.log(`  ${events} events in ${seconds.toFixed(2)} s: ${Math.round(events / seconds)} events/s`);
      return events / seconds;
    }

    const metrics: Metrics = {};
    const rates: number[] = [];
    for (const history of HISTORIES) {
      console.log(`${COMMITMENTS} commitments of ${history} entries…`);
      const rate = await eventsPerSecond(history);
      rates.push(rate);
      metrics[`notifier.events_per_s_history_${history}`] = { value: round(rate, 0), unit: 'events/s' };
    }
    if (rates.length > 1)
      metrics['notifier.history_ratio'] = {
        value: round((rates.at(-1) as number) / (rates[0] as number), 2),
        unit: `× the ${HISTORIES[0]}-entry rate`,
      };
    if (RENAMES > 0) {
      // The baseline is taken just before the renames, on the ledger and tables as they have grown.
      const shortest = HISTORIES[0] as number;
      console.log(`${COMMITMENTS} commitments of ${shortest} entries, then again after ${RENAMES} renames…`);
      const before = await eventsPerSecond(shortest);
      for (const [userId, name] of people)
        for (let i = 1; i <= RENAMES; i++)
          await append(ledger, profileStream(userId), userId, [
            { type: PROFILE_UPDATED, data: { userId, displayName: `${name} ${i}`, avatarUrl: null } },
          ]);
      const renamed = await eventsPerSecond(shortest);
      metrics[`notifier.events_per_s_renamed_${RENAMES}`] = { value: round(renamed, 0), unit: 'events/s' };
      metrics['notifier.renames_ratio'] = {
        value: round(renamed / before, 2),
        unit: '× the rate just before the renames',
      };
    }
    await ledger.drain();
    return metrics;
  } finally {
    await database.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Runs the notifier until it has projected the ledger's head; the seconds it took. */
async function catchUp(pool: import('pg').Pool, ledger: Ledger, notifier: Projection): Promise<number> {
  await ledger.drain();
  const started = performance.now();
  const projector = startProjector(
    { pool, origin: ORIGIN, cipher: ledger.cipher, log: quiet },
    { projections: [notifier], batchSize: BATCH, pollMs: 20 },
  );
  try {
    for (;;) {
      const { rows } = await pool.query<{ behind: boolean }>(
        `select last_index < (select tree_size - 1 from ledger_head) as behind
           from projection_checkpoints where projection = 'notifications'`,
      );
      if (rows[0]?.behind === false) return (performance.now() - started) / 1000;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    await projector.close();
  }
}
