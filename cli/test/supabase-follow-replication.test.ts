// The dual run by logical replication: where the source has wal_level = logical and the role may
// replicate, --follow streams the source's changes (pgoutput) instead of polling, so what changes
// arrives within moments, a party removed without a trace in the timestamps included; a follower
// stopped and started again goes on from its slot, bringing nothing twice; and a source that cannot
// replicate is polled, saying so.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCommitment } from '@connect/command';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '@connect/db';
import type { Commitment } from '@connect/domain';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject, test, vi } from 'vitest';
import { type Stack, testStack } from '../../test/support/stack.ts';
import { migrateFromSupabaseCommand } from '../src/commands/migrate-from-supabase.ts';
import { type ChangeFeed, type FollowPass, followSupabase, sourceKey } from '../src/supabase/follow.ts';
import type { ImportDeps } from '../src/supabase/import.ts';
import { reconcileWithSupabase } from '../src/supabase/reconcile-run.ts';
import { PUBLICATION, slotName } from '../src/supabase/replication.ts';
import { openSource } from '../src/supabase/source.ts';
import {
  acceptInvitation,
  changeTerms,
  eventuallyLoaded,
  historyRow,
  newUserSignsIn,
  proposeNewCommitment,
} from './source-changes.ts';
import { type SeededSource, seedSupabaseSource, sourceIds } from './supabase-source.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
const ids = sourceIds();
const { ana, ben, cleo } = ids;
let stack: Stack;
let sourceDir: string;
let server: EmbeddedPostgres;
let seeded: SeededSource;
let deps: ImportDeps;
/** What stopped a follower early, if anything did: waiting for a change is then pointless. */
let followerFailed: unknown;

beforeAll(async () => {
  sourceDir = await mkdtemp(path.join(os.tmpdir(), 'connect-logical-'));
  await chmod(sourceDir, 0o711); // as root, the server runs as the postgres user, which must enter it
  [stack, server] = await Promise.all([
    testStack(),
    startEmbeddedPostgres(sourceDir, { settings: { wal_level: 'logical' } }),
  ]);
  seeded = await seedSupabaseSource(server.url, ids);
  deps = {
    db: stack.database.db,
    ledger: stack.command.ledger,
    dataDir: stack.command.dataDir,
    keys: stack.command.keys,
    providers: ['google'],
  };
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await seeded?.close();
  await server?.stop();
  if (sourceDir) await rm(sourceDir, { recursive: true, force: true });
});

/** Runs a follower (changes: auto) until stopped; its passes are collected. */
async function startFollower() {
  const source = await openSource(seeded.url);
  const stop = new AbortController();
  const passes: FollowPass[] = [];
  let feed: ChangeFeed | undefined;
  let firstPass!: () => void;
  const ready = new Promise<void>((resolve) => {
    firstPass = resolve;
  });
  const running = followSupabase(source, deps, sourceKey(seeded.url), {
    storageDir: seeded.storageDir,
    changes: 'auto',
    sourceUrl: seeded.url,
    intervalMs: 200,
    signal: stop.signal,
    onFirstPass: (_reports, chosen) => {
      feed = chosen;
      firstPass();
    },
    onPass: (pass) => passes.push(pass),
  }).finally(() => source.close());
  running.catch((error: unknown) => {
    followerFailed = error;
  });
  await Promise.race([ready, running]);
  return {
    feed,
    passes,
    stop: async () => {
      stop.abort();
      await running;
    },
  };
}

const load = (id: string) => loadCommitment(stack.database.db, stack.command.ledger, id);
const eventually = (id: string, check: (c: Commitment) => boolean) =>
  eventuallyLoaded(stack, id, check, () => followerFailed);
const history = (id: string, by: string, change: string, next: object) =>
  historyRow(seeded, id, by, change, next);

const eventsOf = async (id: string) =>
  (
    await stack.database.pool.query<{ type: string; meta: Record<string, unknown> }>(
      'select type, meta from ledger_entries where stream = $1 order by version',
      [`commitment-${id}`],
    )
  ).rows;

test('with --changes auto a logical source is replicated: its changes arrive, a party deleted without history too', async () => {
  const follower = await startFollower();
  try {
    expect(follower.feed).toEqual({ by: 'replication', slot: slotName(stack.command.ledger.origin) });
    const { client } = seeded;
    const { rows: made } = await client.query(
      `select (select count(*)::int from pg_publication where pubname = $1) as publications,
              (select count(*)::int from pg_replication_slots where slot_name = $2 and plugin = 'pgoutput') as slots`,
      [PUBLICATION, slotName(stack.command.ledger.origin)],
    );
    expect(made[0]).toEqual({ publications: 1, slots: 1 });

    // A new commitment, proposed to ben, with its history, in one transaction.
    const fresh = await proposeNewCommitment(seeded, ids);
    const arrived = await eventually(fresh, (c) => c.status === 'proposed');
    expect(arrived.parties).toContainEqual({ userId: ben.id, role: 'participant', response: 'invited' });

    // ben accepts it.
    await client.query('begin');
    await acceptInvitation(seeded, fresh, ben.id);
    await client.query('commit');
    await eventually(fresh, (c) => c.parties.some((p) => p.userId === ben.id && p.response === 'accepted'));

    // An edit of a commitment the first pass imported.
    const draft = seeded.commitments.draft as string;
    await client.query('begin');
    await client.query(
      `update public.commitments set title = 'A better title', updated_at = now() where id = $1`,
      [draft],
    );
    await history(draft, ana.id, 'updated', { title: 'A better title' });
    await client.query('commit');
    await eventually(draft, (c) => c.title === 'A better title');

    // cleo's party row deleted by hand: no history row, no timestamp touched. Polling cannot see
    // this; the stream names the commitment (commitment_id is in the deleted row's key).
    await client.query('delete from public.commitment_parties where commitment_id = $1 and user_id = $2', [
      draft,
      cleo.id,
    ]);
    await eventually(draft, (c) => !c.parties.some((p) => p.userId === cleo.id));
    expect((await eventsOf(draft)).at(-1)).toMatchObject({
      type: 'PartyRemoved',
      meta: { importedFrom: 'supabase', sourceId: `commitments:${draft}` },
    });

    // A new user, who can sign in with their Supabase password.
    await newUserSignsIn(seeded, stack);

    expect((await eventsOf(fresh)).map((e) => e.type)).toEqual([
      'CommitmentDrafted',
      'PartyInvited',
      'CommitmentProposed',
      'InvitationAccepted',
    ]);
    // The lag (source commit → written here) is measured and kept for /metrics.
    expect(follower.passes.some((p) => p.lagsMs.length > 0)).toBe(true);
    const { rows: follow } = await stack.database.pool.query(
      'select lag_seconds, polled_at from import_follow where source = $1',
      [sourceKey(seeded.url)],
    );
    expect(follow[0].lag_seconds).toBeGreaterThanOrEqual(0);
    expect(follow[0].lag_seconds).toBeLessThan(10);
  } finally {
    await follower.stop();
  }

  const source = await openSource(seeded.url);
  const report = await reconcileWithSupabase(
    source,
    { db: stack.database.db, origin: stack.command.ledger.origin, cipher: stack.command.ledger.cipher },
    { storageDir: seeded.storageDir },
  ).finally(() => source.close());
  expect(report.differences.filter((d) => d.id === seeded.commitments.draft)).toEqual([]);
}, 60_000);

test('a replicating follower stopped and started again goes on from its slot, bringing nothing twice', async () => {
  const pending = seeded.commitments.pending as string;
  const before = await load(pending);

  // While nobody follows: cleo accepts, the creator edits the terms, a party row goes by hand.
  const { client } = seeded;
  await acceptInvitation(seeded, pending, cleo.id);
  await changeTerms(seeded, pending, ids);
  const cancelled = seeded.commitments.cancelled as string;
  const cancelledBefore = await load(cancelled);
  await client.query('delete from public.commitment_parties where commitment_id = $1 and user_id = $2', [
    seeded.commitments.draft,
    ben.id,
  ]);
  const { rows: walAt } = await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');

  const follower = await startFollower();
  try {
    expect(follower.feed?.by).toBe('replication');
    const after = await eventually(pending, (c) => c.terms === 'new terms');
    expect(after.parties).toContainEqual({ userId: cleo.id, role: 'witness', response: 'accepted' });
    expect(after.version).toBe(before.version + 2);
    await eventually(seeded.commitments.draft as string, (c) => !c.parties.some((p) => p.userId === ben.id));

    // A later change arrives too, and the ones before it are not brought again.
    await client.query('update public.commitments set title = $2, updated_at = now() where id = $1', [
      cancelled,
      'Cancelled, renamed',
    ]);
    await eventually(cancelled, (c) => c.title === 'Cancelled, renamed');
    expect((await load(cancelled)).version).toBe(cancelledBefore.version + 1);
    expect((await load(pending)).version).toBe(before.version + 2);

    // What is written is acknowledged: the slot has moved past what was brought over.
    const slot = slotName(stack.command.ledger.origin);
    const deadline = Date.now() + 5_000;
    for (;;) {
      const { rows } = await client.query<{ past: boolean }>(
        'select confirmed_flush_lsn >= $2::pg_lsn as past from pg_replication_slots where slot_name = $1',
        [slot, walAt[0]?.lsn],
      );
      if (rows[0]?.past) break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await follower.stop();
  }

  // No history row was brought twice, by either follower.
  const { rows } = await stack.database.pool.query<{ source: string; n: number }>(
    `select meta->>'sourceId' as source, count(*)::int as n from ledger_entries
      where meta->>'sourceId' like 'commitment_history:%' group by 1 having count(*) > 1`,
  );
  expect(rows).toEqual([]);
}, 60_000);

test('a source without wal_level = logical is polled, saying so; --changes replication refuses it', async () => {
  // An empty source on the run's PostgreSQL (wal_level = replica).
  const admin = new pg.Client({ connectionString: inject('adminUrl') });
  await admin.connect();
  const name = `supabase_polled_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  await admin.query(`create database ${name}`);
  const url = new URL(inject('adminUrl'));
  url.pathname = `/${name}`;
  try {
    const schema = new pg.Client({ connectionString: url.toString() });
    await schema.connect();
    await schema.query(await readFile(new URL('../src/supabase/source-schema.sql', import.meta.url), 'utf8'));
    await schema.end();
    // Refused in the command itself (exit 2), before anything is imported.
    const env = {
      DATABASE_URL: stack.database.url,
      CONNECT_DATA_DIR: stack.command.dataDir,
      CONNECT_LEDGER_ORIGIN: stack.command.ledger.origin,
      CONNECT_LEDGER_KEY: Buffer.alloc(32, 11).toString('base64'),
    };
    const saved = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
    Object.assign(process.env, env);
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const args = ['--source', url.toString(), '--follow', '--changes', 'replication'];
      expect(await migrateFromSupabaseCommand(args)).toBe(2);
      expect(errors.mock.calls.flat().join('\n')).toContain(
        "cannot be followed by logical replication: the source's wal_level is replica, not logical",
      );
    } finally {
      errors.mockRestore();
      for (const [name, value] of Object.entries(saved))
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
    }

    // By default (auto) it polls, and says why.
    const polling = spawn(
      process.execPath,
      [BIN, 'migrate-from-supabase', '--source', url.toString(), '--follow'],
      {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let stdout = '';
    polling.stdout.on('data', (chunk: Buffer) => {
      const followed = stdout.includes('following the source');
      stdout += chunk.toString();
      if (!followed && stdout.includes('following the source')) polling.kill('SIGTERM');
    });
    const code = await new Promise((resolve) => polling.once('exit', resolve));
    expect(stdout).toMatch(
      /following the source by polling every 1000 ms \(the source's wal_level is replica, not logical\)/,
    );
    expect(code).toBe(0);
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}, 60_000);
