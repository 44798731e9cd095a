// npm run bench -- import: a Supabase source (a second database on the same server) with
// BENCH_IMPORT_USERS users (default 2,000) and BENCH_IMPORT_COMMITMENTS commitments (default
// 10,000), each with two parties and ten history rows, imported as `connect migrate-from-supabase`
// does (bodies, emails and documents sealed, unless CONNECT_ENCRYPTION=off); then the dual run:
//   import.events_per_s        ledger events written per second by the whole import
//   import.commitments_per_s   commitments (with their streams) per second
//   follow.lag_p99_ms          a change committed in the source → its event in the ledger, with the
//                              follower polling at its default interval (changes one at a time, at
//                              random moments)
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { signingKeyFromSeed } from '@connect/crypto';
import { createPool, loadConfig } from '@connect/db';
import { openBodyCipher, openLedger, withNativeSigner } from '@connect/ledger';
import bcrypt from 'bcryptjs';
import pg from 'pg';
import { followSupabase, sourceKey } from '../cli/src/supabase/follow.ts';
import { importFromSupabase } from '../cli/src/supabase/import.ts';
import { openSource } from '../cli/src/supabase/source.ts';
import { benchDatabase, type Metrics, median, percentile, round } from './support.ts';

const USERS = Number(process.env.BENCH_IMPORT_USERS ?? 2_000);
const COMMITMENTS = Number(process.env.BENCH_IMPORT_COMMITMENTS ?? 10_000);
const FOLLOW_CHANGES = Number(process.env.BENCH_FOLLOW_CHANGES ?? 40);
const ORIGIN = 'bench.connect.local/ledger';

/** The source schema, then users, types and commitments made by SQL (the seed is not what is timed). */
async function seedSource(client: pg.Client) {
  await client.query(
    await readFile(new URL('../cli/src/supabase/source-schema.sql', import.meta.url), 'utf8'),
  );
  // One hash for all: hashing 2,000 passwords would time bcrypt, not the import.
  const hash = bcrypt.hashSync('bench password', 4);
  await client.query(
    `insert into auth.users (id, email, encrypted_password, email_confirmed_at, created_at, updated_at, raw_user_meta_data)
     select gen_random_uuid(), 'user' || n || '@bench.test', $1, now(), now() - interval '1 day', now() - interval '1 day',
            jsonb_build_object('full_name', 'User ' || n)
       from generate_series(1, $2::int) n`,
    [hash, USERS],
  );
  await client.query(
    `insert into public.profiles (id, display_name, created_at, updated_at)
     select id, raw_user_meta_data->>'full_name', created_at, updated_at from auth.users`,
  );
  await client.query(
    `insert into public.commitment_types (name, config, created_at) values
       ('personal', '{}', now() - interval '1 day'), ('business', '{}', now() - interval '1 day')`,
  );
  // Each commitment: a creator, a participant and a witness, all accepted, active; its history
  // the ten steps that lead there.
  await client.query(
    `create temporary table plan as
     select gen_random_uuid() as id, n,
            (select id from public.commitment_types where name = 'personal') as type_id,
            u[1 + n % cardinality(u)] as creator, u[1 + (n + 1) % cardinality(u)] as participant,
            u[1 + (n + 2) % cardinality(u)] as witness,
            now() - interval '1 day' + n * interval '1 millisecond' as at
       from generate_series(1, $1::int) n, (select array_agg(id order by id) as u from auth.users) users`,
    [COMMITMENTS],
  );
  await client.query(
    `insert into public.commitments (id, type_id, creator_id, title, description, terms, status, created_at, updated_at)
     select id, type_id, creator, 'Commitment ' || n || ' (final)', 'What is promised, in a sentence or two.',
            '"Paid back within a month"', 'active', at, at from plan`,
  );
  await client.query(
    `insert into public.commitment_parties (commitment_id, user_id, role, status, invited_at, responded_at)
     select id, creator, 'creator', 'accepted', at, at from plan
     union all select id, participant, 'participant', 'accepted', at, at from plan
     union all select id, witness, 'witness', 'accepted', at, at from plan`,
  );
  await client.query(
    `insert into public.commitment_history (commitment_id, changed_by, change_type, new_data, created_at)
     select id, by, change, data, at + step * interval '1 second' from plan, lateral (values
       (1, creator, 'created', jsonb_build_object('title', 'Commitment ' || n, 'description', 'What is promised.', 'terms', 'Soon')),
       (2, creator, 'party_added', jsonb_build_object('user_id', participant, 'role', 'participant')),
       (3, creator, 'party_added', jsonb_build_object('user_id', witness, 'role', 'witness')),
       (4, creator, 'updated', jsonb_build_object('title', 'Commitment ' || n || ' (final)')),
       (5, creator, 'updated', jsonb_build_object('description', 'What is promised, in a sentence or two.')),
       (6, creator, 'updated', jsonb_build_object('terms', 'Paid back within a month')),
       (7, creator, 'status_changed', jsonb_build_object('status', 'pending')),
       (8, participant, 'party_responded', jsonb_build_object('user_id', participant, 'status', 'accepted')),
       (9, witness, 'party_responded', jsonb_build_object('user_id', witness, 'status', 'accepted')),
       (10, creator, 'status_changed', jsonb_build_object('status', 'active'))
     ) as steps(step, by, change, data)
     order by n, step`,
  );
}

export async function benchImport(): Promise<Metrics> {
  // Bodies, emails and documents sealed as connect migrate-from-supabase seals them: its setting, read its way.
  const { encryption } = loadConfig({ CONNECT_ENCRYPTION: process.env.CONNECT_ENCRYPTION });
  const database = await benchDatabase(24);
  const sourceUrl = new URL(database.url);
  const sourceName = `supabase_source_${process.pid}`;
  sourceUrl.pathname = `/${sourceName}`;
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query(`create database ${sourceName}`);
  const client = new pg.Client({ connectionString: sourceUrl.toString() });
  await client.connect();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-bench-import-'));
  const stop = new AbortController();
  try {
    console.log(`seeding the source: ${USERS} users, ${COMMITMENTS} commitments with 10 history rows each…`);
    await seedSource(client);
    const key = withNativeSigner(signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(45)));
    // As connect migrate-from-supabase runs it: the ledger appends on a pool of its own.
    const appendPool = createPool(database.url, 2);
    const { keys, cipher } = await openBodyCipher(
      database.pool,
      { dataDir, masterKeys: undefined, encryption },
      { listen: false },
    );
    const ledger = await openLedger({ pool: appendPool, db: database.db, origin: ORIGIN, key, cipher });
    const deps = { db: database.db, ledger, dataDir, keys, encryption, providers: [] };
    const size = async () =>
      (await database.pool.query<{ n: number }>('select count(*)::int as n from ledger_entries')).rows[0]
        ?.n ?? 0;

    console.log(`importing (encryption ${encryption ? 'on' : 'off'})…`);
    const before = await size();
    const started = performance.now();
    const source = await openSource(sourceUrl.toString());
    const phases = new Map<string, number>();
    const reports = await importFromSupabase(source, deps, {
      userConcurrency: 16,
      onProgress: ({ phase }) => {
        if (!phases.has(phase)) phases.set(phase, performance.now());
      },
    }).finally(() => source.close());
    const seconds = (performance.now() - started) / 1000;
    const events = (await size()) - before;
    const failed = reports.filter((r) => r.outcome === 'failed');
    if (failed.length > 0) throw new Error(`${failed.length} rows failed: ${JSON.stringify(failed[0])}`);
    const imported = reports.filter((r) => r.kind === 'commitment' && r.outcome === 'imported').length;
    const at = (phase: string) => ((phases.get(phase) ?? started) - started) / 1000;
    console.log(
      `  ${events} events, ${imported} commitments in ${seconds.toFixed(1)} s (users ${at('type').toFixed(1)} s, commitments ${(seconds - at('commitment')).toFixed(1)} s)`,
    );

    console.log(`following; ${FOLLOW_CHANGES} changes, one at a time…`);
    const follower = await openSource(sourceUrl.toString());
    const following = followSupabase(follower, deps, sourceKey(sourceUrl.toString()), {
      signal: stop.signal,
      onPass: (p) => process.env.BENCH_DEBUG && console.log(JSON.stringify(p)),
    })
      .catch((error) => {
        console.error('the follower failed:', error);
        throw error;
      })
      .finally(() => follower.close());
    const ids = (
      await client.query<{ id: string }>('select id from public.commitments order by random() limit $1', [
        FOLLOW_CHANGES,
      ])
    ).rows.map((r) => r.id);
    const lags: number[] = [];
    for (const [i, id] of ids.entries()) {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 500));
      await client.query('begin');
      await client.query(`update public.commitments set title = $2, updated_at = now() where id = $1`, [
        id,
        `Renamed ${i}`,
      ]);
      const { rows } = await client.query<{ id: string }>(
        `insert into public.commitment_history (commitment_id, changed_by, change_type, new_data)
         select id, creator_id, 'updated', jsonb_build_object('title', title) from public.commitments where id = $1
         returning id::text`,
        [id],
      );
      await client.query('commit');
      const committed = performance.now();
      const sourceId = `commitment_history:${rows[0]?.id}`;
      for (;;) {
        const found = await database.pool.query(
          `select 1 from ledger_entries where stream = $1 and meta->>'sourceId' = $2`,
          [`commitment-${id}`, sourceId],
        );
        if (found.rowCount) break;
        if (performance.now() - committed > 30_000) throw new Error(`change ${sourceId} never arrived`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      lags.push(performance.now() - committed);
    }
    stop.abort();
    await following;
    await ledger.drain();
    await appendPool.end();
    lags.sort((a, b) => a - b);
    console.log(`  lag median ${median(lags).toFixed(0)} ms, p99 ${percentile(lags, 99).toFixed(0)} ms`);
    return {
      'import.events_per_s': { value: round(events / seconds, 0), unit: 'events/s' },
      'import.commitments_per_s': { value: round(imported / seconds, 0), unit: 'commitments/s' },
      'follow.lag_median_ms': { value: round(median(lags), 0), unit: 'ms' },
      'follow.lag_p99_ms': { value: round(percentile(lags, 99), 0), unit: 'ms' },
    };
  } finally {
    stop.abort();
    await client.end();
    await admin.query(`drop database if exists ${sourceName} with (force)`);
    await admin.end();
    await database.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
