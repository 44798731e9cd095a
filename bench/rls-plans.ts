// node --import tsx bench/rls-plans.ts [out.md]: the plans of the query service's get-by-id and
// list-page statements, as connect_reader under row-level security and as the owner (no policy),
// for one user who is party to BENCH_PLANS_MINE (50) of BENCH_PLANS_COMMITMENTS (20,000)
// commitments. The read models are built by the projector from a real ledger, and the statements
// are the ones commitmentsById and listCommitments send (captured from the reader's log).
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { signingKeyFromSeed } from '@connect/crypto';
import { readerUrlFor } from '@connect/db';
import { commitmentStream, DEFAULT_TYPES, profileStream } from '@connect/domain';
import { type NewEvent, openLedger, withNativeSigner } from '@connect/ledger';
import { startProjector } from '@connect/projector';
import type { FastifyBaseLogger } from 'fastify';
import pg from 'pg';
import { commitmentsById, listCommitments } from '../services/query/src/commitments/queries.ts';
import { createReaderDb, readAs } from '../services/query/src/reader.ts';
import { benchDatabase } from './support.ts';

const COMMITMENTS = Number(process.env.BENCH_PLANS_COMMITMENTS ?? 20_000);
const MINE = Number(process.env.BENCH_PLANS_MINE ?? 50);
const USERS = 400;
const RUNS = 200;
const ORIGIN = 'bench.connect.local/ledger';
const log = { info() {}, warn: console.warn, error: console.error } as unknown as FastifyBaseLogger;

function lifecycle(creator: string, participant: string, witness: string, i: number): NewEvent[] {
  return [
    {
      type: 'CommitmentDrafted',
      schema: 2,
      data: {
        type: 'personal',
        creatorId: creator,
        title: `Promise ${i}`,
        description: '',
        terms: `Terms ${i}`,
        amount: null,
        dueAt: '2027-06-01T00:00:00.000Z',
      },
    },
    { type: 'PartyInvited', data: { userId: participant, role: 'participant' } },
    { type: 'PartyInvited', data: { userId: witness, role: 'witness' } },
    { type: 'CommitmentProposed', data: {} },
    { type: 'InvitationAccepted', data: { userId: participant } },
    { type: 'InvitationAccepted', data: { userId: witness } },
    { type: 'CommitmentActivated', data: {} },
  ];
}

interface Statement {
  sql: string;
  parameters: readonly unknown[];
}

async function main(): Promise<void> {
  const out = process.argv[2] ?? '/tmp/rls-plans.md';
  const database = await benchDatabase(16);
  const key = withNativeSigner(signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(44)));
  const ledger = await openLedger({ pool: database.pool, db: database.db, origin: ORIGIN, key });
  const reader = createReaderDb(database.url, {
    log: (event) => {
      if (event.level === 'query')
        captured.push({ sql: event.query.sql, parameters: event.query.parameters });
    },
  });
  const captured: Statement[] = [];
  try {
    await ledger.append({
      stream: 'commitment-types',
      expectedVersion: 'no_stream',
      actor: null,
      events: DEFAULT_TYPES.map((type) => ({ type: 'CommitmentTypeDefined', data: { ...type } })),
    });
    const users = Array.from({ length: USERS }, () => randomUUID());
    for (const [i, id] of users.entries()) {
      await ledger.append({
        stream: profileStream(id),
        expectedVersion: 'no_stream',
        actor: id,
        events: [{ type: 'ProfileRegistered', data: { userId: id, displayName: `User ${i}` } }],
      });
    }
    const me = users[0] as string;
    const others = users.slice(1);
    const every = Math.floor(COMMITMENTS / MINE);
    const mine: string[] = [];
    console.log(`seeding ${COMMITMENTS} commitments, ${MINE} of them with one user as a party…`);
    for (let i = 0; i < COMMITMENTS; i += 64) {
      await Promise.all(
        Array.from({ length: Math.min(64, COMMITMENTS - i) }, async (_, k) => {
          const n = i + k;
          const id = randomUUID();
          const at = (offset: number) => others[(n + offset) % others.length] as string;
          let [creator, participant, witness] = [at(0), at(1 + (n % 7)), at(9 + (n % 11))];
          if (n % every === 0 && mine.length < MINE) {
            mine.push(id);
            [creator, participant, witness] = [
              [me, participant, witness],
              [creator, me, witness],
              [creator, participant, me],
            ][mine.length % 3] as [string, string, string];
          }
          const result = await ledger.append({
            stream: commitmentStream(id),
            expectedVersion: 'no_stream',
            actor: creator,
            events: lifecycle(creator, participant, witness, n),
          });
          if (result.outcome !== 'appended') throw new Error(`seed: ${result.outcome}`);
        }),
      );
    }
    await ledger.drain();
    const { rows: head } = await database.pool.query<{ n: number }>(
      'select tree_size - 1 as n from ledger_head',
    );
    const last = Number(head[0]?.n);
    const projector = startProjector(
      { pool: database.pool, origin: ORIGIN, cipher: ledger.cipher, log },
      { batchSize: 2000 },
    );
    for (;;) {
      const { rows } = await database.pool.query<{ n: string }>(
        'select min(last_index) as n from projection_checkpoints',
      );
      if (Number(rows[0]?.n) >= last) break;
      const stopped = (await projector.status()).find((s) => s.failure);
      if (stopped) {
        await projector.close();
        throw new Error(`projection ${stopped.projection}: ${stopped.failure?.error}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await projector.close();
    if (process.env.BENCH_PLANS_ANALYZE !== '0') await database.pool.query('vacuum analyze');

    const caller = { userId: me, isAdmin: false };
    const target = mine[Math.floor(mine.length / 2)] as string;
    await readAs(reader.db, caller, (db) => commitmentsById(db, ledger.cipher.fields, [target]));
    const get = captured.at(-1) as Statement;
    const page = await readAs(reader.db, caller, (db) =>
      listCommitments(db, ledger.cipher.fields, me, { status: ['active'], limit: 20 }),
    );
    const list = captured.at(-1) as Statement;
    if (page.items.length !== 20) throw new Error(`the list page has ${page.items.length} items`);
    // A user party to three times as many: the page must still come in index order.
    const busy = others[0] as string;
    await readAs(reader.db, { userId: busy, isAdmin: false }, (db) =>
      listCommitments(db, ledger.cipher.fields, busy, { status: ['active'], limit: 20 }),
    );
    const busyList = captured.at(-1) as Statement;

    const asReader = new pg.Client({ connectionString: readerUrlFor(database.url) });
    const asOwner = new pg.Client({ connectionString: database.url });
    await Promise.all([asReader.connect(), asOwner.connect()]);
    const { rows: version } = await asOwner.query<{ v: string }>('select version() as v');
    const { rows: columns } = await asOwner.query<{ n: number }>(
      `select count(*)::int as n from information_schema.columns where table_name = 'commitments' and column_name = 'party_ids'`,
    );

    /** EXPLAIN (ANALYZE, BUFFERS) after warming up, and the mean time of RUNS executions. */
    const measure = async (client: pg.Client, statement: Statement, userId: string | undefined) => {
      await client.query('begin');
      if (userId) {
        await client.query(
          "select set_config('connect.user_id', $1, true), set_config('connect.admin', 'off', true)",
          [userId],
        );
      }
      const params = [...statement.parameters];
      for (let i = 0; i < 20; i++) await client.query(statement.sql, params);
      const started = performance.now();
      for (let i = 0; i < RUNS; i++) await client.query(statement.sql, params);
      const meanMs = (performance.now() - started) / RUNS;
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(
        `explain (analyze, buffers) ${statement.sql}`,
        params,
      );
      await client.query('rollback');
      return { meanMs, plan: rows.map((row) => row['QUERY PLAN']).join('\n') };
    };

    const sections: string[] = [
      `# Row-level security plans (${columns[0]?.n ? 'party_ids: after' : 'connect_can_see_commitment: before'})`,
      '',
      `${version[0]?.v}. ${COMMITMENTS} commitments (3 parties each, 7 events each), ${USERS} users; the caller is a party to ${mine.length}.`,
      `Mean round trip over ${RUNS} runs on one connection (after 20 warm-up runs), then EXPLAIN (ANALYZE, BUFFERS).`,
      '',
    ];
    const { rows: counts } = await asOwner.query<{ n: number }>(
      'select count(*)::int as n from commitment_parties where user_id = $1',
      [busy],
    );
    const statements: [string, Statement, string][] = [
      ['get by id (commitmentsById)', get, me],
      ['list page (listCommitments, status=active, limit 20)', list, me],
      [`list page of a user party to ${counts[0]?.n} commitments`, busyList, busy],
    ];
    // party-ledger-routes' sharesCommitment: may the caller read this user's profile entries?
    const { rows: fellow } = await asOwner.query<{ user_id: string }>(
      'select user_id from commitment_parties where commitment_id = $1 and user_id <> $2 limit 1',
      [target, me],
    );
    statements.push([
      'shares a commitment with one of its parties (sharesCommitment)',
      {
        sql: 'select "user_id" from "commitment_parties" where "user_id" = $1 limit $2',
        parameters: [fellow[0]?.user_id, 1],
      },
      me,
    ]);
    for (const [name, statement, userId] of statements) {
      const rls = await measure(asReader, statement, userId);
      const bare = await measure(asOwner, statement, undefined);
      sections.push(
        `## ${name}`,
        '',
        '```sql',
        statement.sql,
        '```',
        '',
        `### as connect_reader (row-level security): mean ${rls.meanMs.toFixed(3)} ms`,
        '',
        '```',
        rls.plan,
        '```',
        '',
        `### as the owner (no policy): mean ${bare.meanMs.toFixed(3)} ms`,
        '',
        '```',
        bare.plan,
        '```',
        '',
      );
      console.log(`${name}: reader ${rls.meanMs.toFixed(3)} ms, owner ${bare.meanMs.toFixed(3)} ms`);
    }
    await Promise.all([asReader.end(), asOwner.end()]);
    await writeFile(out, sections.join('\n'));
    console.log(`plans written to ${out}`);
  } finally {
    await reader.close();
    await ledger.drain();
    if (process.env.BENCH_PLANS_KEEP) console.log(`kept ${database.url}`);
    else await database.close();
  }
}

await main();
