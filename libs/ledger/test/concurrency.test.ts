import { setTimeout as sleep } from 'node:timers/promises';
import {
  entryLeafHash,
  fromBase64,
  openCheckpoint,
  rootFromLeaves,
  type VerifierKey,
  verifyInclusion,
} from '@connect/crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import {
  clearBodies,
  type Entry,
  inclusionProof,
  type Ledger,
  latestCheckpoint,
  readEntries,
} from '../src/index.ts';
import { KEY, ledgerOn } from './support.ts';

let database: TestDatabase;
let ledgers: Ledger[];

const APPENDERS = 32;
const APPENDS_EACH = 60;
const STREAMS = 12;

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 40 });
  // Two ledger handles on one database behave as two processes: each batches on its own and
  // they contend for the head's row lock.
  ledgers = [await ledgerOn(database, 50), await ledgerOn(database, 50)];
});
afterAll(() => database.close());

test('32 concurrent appenders on overlapping streams leave a dense, verifiable ledger', async () => {
  let conflicts = 0;
  let maxAttempt = 0;
  const workers = Array.from({ length: APPENDERS }, async (_, worker) => {
    const ledger = ledgers[worker % 2] as Ledger;
    for (let i = 0; i < APPENDS_EACH; i++) {
      const stream = `stream-${(worker * 7 + i) % STREAMS}`;
      const events = Array.from({ length: 1 + (i % 3) }, (_, k) => ({
        type: 'Counted',
        data: { worker, i, k },
      }));
      if (i % 2 === 0) {
        const result = await ledger.append({ stream, expectedVersion: 'any', actor: `w${worker}`, events });
        expect(result.outcome).toBe('appended');
      } else {
        // Optimistic concurrency: read the version, append at it, and on a conflict retry after a
        // jittered, growing pause, as a client should; without it, the unconditional appenders on
        // the same stream can starve one retrying client for a long run of attempts.
        for (let attempt = 0; ; attempt++) {
          const version =
            (
              await database.db
                .selectFrom('ledger_entries')
                .select((eb) => eb.fn.max('version').as('v'))
                .where('stream', '=', stream)
                .executeTakeFirst()
            )?.v ?? 0;
          const result = await ledger.append({
            stream,
            expectedVersion: version,
            actor: `w${worker}`,
            events,
          });
          if (result.outcome === 'appended') break;
          expect(result.outcome).toBe('version_conflict');
          conflicts++;
          maxAttempt = Math.max(maxAttempt, attempt);
          expect(attempt).toBeLessThan(100);
          await sleep(Math.random() * 2 ** Math.min(attempt, 6));
        }
      }
    }
  });
  await Promise.all(workers);

  const expectedTotal =
    APPENDERS * Array.from({ length: APPENDS_EACH }, (_, i) => 1 + (i % 3)).reduce((a, b) => a + b);
  const entries: Entry[] = [];
  for (let from = 0; ; ) {
    const page = await readEntries(database.db, { origin: KEY.name, cipher: clearBodies }, from, 1000);
    if (page.length === 0) break;
    entries.push(...page);
    from += page.length;
  }
  expect(entries).toHaveLength(expectedTotal);
  expect(entries.map((e) => e.index)).toEqual(entries.map((_, i) => i));

  const versions = new Map<string, number[]>();
  for (const entry of entries)
    versions.set(entry.stream, [...(versions.get(entry.stream) ?? []), entry.version]);
  for (const list of versions.values()) expect(list).toEqual(list.map((_, i) => i + 1));

  const leaves = entries.map((entry) => entryLeafHash(entry));
  expect(
    leaves.map((leaf, i) =>
      Buffer.from(leaf).equals(fromBase64((entries[i] as { leafHash: string }).leafHash)),
    ),
  ).not.toContain(false);

  const checkpoint = await latestCheckpoint(database.db);
  const trusted: VerifierKey[] = [KEY];
  const opened = openCheckpoint(checkpoint?.note ?? '', trusted);
  expect(opened.treeSize).toBe(expectedTotal);
  expect(Buffer.from(opened.rootHash)).toEqual(Buffer.from(rootFromLeaves(leaves)));

  for (const [index, leaf] of leaves.entries()) {
    const proof = await inclusionProof(database.pool, index, opened.treeSize);
    const ok = verifyInclusion(
      { index, treeSize: opened.treeSize, hashes: proof.hashes.map(fromBase64) },
      leaf,
      opened.rootHash,
    );
    if (!ok) expect.fail(`inclusion proof of ${index} does not verify`);
  }
  console.log(`${expectedTotal} events, ${conflicts} optimistic conflicts retried, max ${maxAttempt}`);
});
