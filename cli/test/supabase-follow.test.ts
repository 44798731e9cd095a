// The dual run: with --follow, what changes in the Supabase source (new commitments, edits,
// responses, new document versions, new users, a row changed without history) arrives in Connect
// within seconds, stopping and starting the follower loses nothing, and an import killed midway
// finishes on the next run without importing anything twice.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCommitment } from '@connect/command';
import { parseVerifierKey } from '@connect/crypto';
import { type Commitment, profileStream } from '@connect/domain';
import { auditLedger, registerOperationsMetrics } from '@connect/ledger';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { type Stack, testStack } from '../../test/support/stack.ts';
import { type FollowPass, followSupabase, sourceKey } from '../src/supabase/follow.ts';
import { type ImportDeps, importFromSupabase } from '../src/supabase/import.ts';
import { reconcileWithSupabase } from '../src/supabase/reconcile-run.ts';
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
const { ana, ben, cleo, types } = ids;
let stack: Stack;
let seeded: SeededSource;
let deps: ImportDeps;

/** What the import writes into `target` with. */
const importDeps = (target: Stack): ImportDeps => ({
  db: target.database.db,
  ledger: target.command.ledger,
  dataDir: target.command.dataDir,
  keys: target.command.keys,
  providers: ['google'],
});

/** A whole first pass of the seeded source into `target`. */
async function importInto(target: Stack) {
  const source = await openSource(seeded.url);
  return importFromSupabase(source, importDeps(target), { storageDir: seeded.storageDir }).finally(() =>
    source.close(),
  );
}

beforeAll(async () => {
  stack = await testStack();
  seeded = await seedSupabaseSource(inject('adminUrl'), ids);
  deps = importDeps(stack);
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await seeded?.close();
});

/** Runs a follower until stopped; its passes are collected. */
async function startFollower() {
  const source = await openSource(seeded.url);
  const stop = new AbortController();
  const passes: FollowPass[] = [];
  let firstPass!: () => void;
  const ready = new Promise<void>((resolve) => {
    firstPass = resolve;
  });
  const running = followSupabase(source, deps, sourceKey(seeded.url), {
    storageDir: seeded.storageDir,
    intervalMs: 100,
    signal: stop.signal,
    onFirstPass: () => firstPass(),
    onPass: (pass) => passes.push(pass),
  }).finally(() => source.close());
  await Promise.race([ready, running]);
  return {
    passes,
    /** Resolves after `count` more passes; rejects if the follower failed. */
    passesMore: async (count: number) => {
      const until = passes.length + count;
      while (passes.length < until)
        await Promise.race([running, new Promise((resolve) => setTimeout(resolve, 50))]);
      await Promise.race([running, Promise.resolve()]);
    },
    stop: async () => {
      stop.abort();
      await running;
    },
  };
}

const load = (id: string) => loadCommitment(stack.database.db, stack.command.ledger, id);
const eventually = (id: string, check: (c: Commitment) => boolean) => eventuallyLoaded(stack, id, check);
const history = (id: string, by: string, change: string, next: object) =>
  historyRow(seeded, id, by, change, next);

test('changes in the source arrive while following, keeping who made them and when', async () => {
  const follower = await startFollower();
  try {
    const { client } = seeded;
    // A new commitment, proposed to ben, with its history.
    const fresh = await proposeNewCommitment(seeded, ids);
    const arrived = await eventually(fresh, (c) => c.status === 'proposed');
    expect(arrived.parties).toContainEqual({ userId: ben.id, role: 'participant', response: 'invited' });

    // ben accepts it: the response and its history row.
    await client.query('begin');
    await acceptInvitation(seeded, fresh, ben.id);
    await client.query('commit');
    await eventually(fresh, (c) => c.parties.some((p) => p.userId === ben.id && p.response === 'accepted'));

    // An edit of a commitment the first pass imported, and a new version of one of its documents.
    const draft = seeded.commitments.draft as string;
    await client.query('begin');
    await client.query(
      `update public.commitments set title = 'A better title', updated_at = now() where id = $1`,
      [draft],
    );
    await history(draft, ana.id, 'updated', { title: 'A better title' });
    const docId = randomUUID();
    await writeFile(path.join(seeded.storageDir, 'documents', `${draft}-plan.v1`), 'the plan');
    await client.query(
      `insert into public.commitment_documents (id, commitment_id, name, version, storage_path, mime_type, size_bytes, uploaded_by)
       values ($1, $2, 'plan.pdf', 1, $3, 'application/pdf', 8, $4)`,
      [docId, draft, `${draft}-plan.v1`, ana.id],
    );
    await history(draft, ana.id, 'document_added', { id: docId });
    await client.query('commit');
    const edited = await eventually(draft, (c) => c.title === 'A better title' && c.documents.length > 0);
    expect(edited.documents).toMatchObject([{ name: 'plan.pdf', version: 1, size: 8 }]);

    // A row changed by hand, with no history row: the follower states the difference.
    const noHistory = seeded.commitments['no-history'] as string;
    await client.query(
      `update public.commitments set description = 'changed without history', updated_at = now() where id = $1`,
      [noHistory],
    );
    await eventually(noHistory, (c) => c.description === 'changed without history');

    // A new user, who can sign in with their Supabase password.
    await newUserSignsIn(seeded, stack);

    // What arrived keeps its origin: the history row, its author and time.
    const { rows } = await stack.database.pool.query(
      `select type, meta from ledger_entries where stream = $1 order by version`,
      [`commitment-${fresh}`],
    );
    expect(rows.map((r) => r.type)).toEqual([
      'CommitmentDrafted',
      'PartyInvited',
      'CommitmentProposed',
      'InvitationAccepted',
    ]);
    expect(rows[3].meta).toMatchObject({ importedFrom: 'supabase', originalActor: ben.id });
    expect(rows[3].meta.sourceId).toMatch(/^commitment_history:\d+$/);
    expect(follower.passes.some((p) => p.lagsMs.length > 0)).toBe(true);

    // The lag is on /metrics, per source.
    const registry = new Registry();
    registerOperationsMetrics(registry, { db: stack.database.db });
    const scraped = await registry.metrics();
    for (const series of [
      'connect_supabase_follow_lag_seconds',
      'connect_supabase_follow_last_poll_timestamp_seconds',
    ])
      expect(scraped).toContain(`${series}{source="${sourceKey(seeded.url)}"}`);
  } finally {
    await follower.stop();
  }

  // Nothing about these rows differs between the two systems, and the ledger audits clean.
  const source = await openSource(seeded.url);
  const report = await reconcileWithSupabase(
    source,
    { db: stack.database.db, origin: stack.command.ledger.origin, cipher: stack.command.ledger.cipher },
    { storageDir: seeded.storageDir },
  ).finally(() => source.close());
  const changed = new Set([seeded.commitments.draft, seeded.commitments['no-history']]);
  expect(report.differences.filter((d) => changed.has(d.id))).toEqual([]);
  expect(
    (
      await auditLedger(stack.database.db, parseVerifierKey(stack.command.ledger.verifierKey), {
        cipher: stack.command.ledger.cipher,
      })
    ).ok,
  ).toBe(true);
}, 60_000);

test('a follower stopped and started again brings over what changed meanwhile, and nothing twice', async () => {
  const pending = seeded.commitments.pending as string;
  const before = await load(pending);
  const { rows: lookedUp } = await stack.database.pool.query('select watermark from import_follow');
  expect(lookedUp).toHaveLength(1);

  // While nobody follows: cleo accepts, the creator edits the terms.
  await acceptInvitation(seeded, pending, cleo.id);
  await changeTerms(seeded, pending, ids);

  const follower = await startFollower();
  try {
    const after = await eventually(pending, (c) => c.terms === 'new terms');
    expect(after.parties).toContainEqual({ userId: cleo.id, role: 'witness', response: 'accepted' });
    expect(after.version).toBe(before.version + 2);
    // Later passes look at the same rows again (the overlap) and append nothing.
    await follower.passesMore(3);
    expect((await load(pending)).version).toBe(before.version + 2);
  } finally {
    await follower.stop();
  }
}, 60_000);

test('an import killed midway finishes on the next run, with nothing imported twice', async () => {
  // A source large enough to be stopped in the middle: 1,500 more commitments with their history.
  const { client } = seeded;
  await client.query(
    `insert into public.commitments (id, type_id, creator_id, title, status, created_at, updated_at)
     select gen_random_uuid(), $1, $2, 'Bulk ' || n, 'draft', now(), now() from generate_series(1, 1500) n`,
    [types.personal, ana.id],
  );
  await client.query(
    `insert into public.commitment_history (commitment_id, changed_by, change_type, new_data)
     select id, $1, 'created', jsonb_build_object('title', title) from public.commitments where title like 'Bulk %'`,
    [ana.id],
  );
  const target = await testStack();
  try {
    const env = {
      ...process.env,
      DATABASE_URL: target.database.url,
      CONNECT_DATA_DIR: target.command.dataDir,
      CONNECT_LEDGER_ORIGIN: target.command.ledger.origin,
      CONNECT_LEDGER_KEY: Buffer.alloc(32, 11).toString('base64'),
    };
    const args = [BIN, 'migrate-from-supabase', '--source', seeded.url, '--storage', seeded.storageDir];
    const first = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    // Killed as soon as some commitments are in, and before they all are.
    await new Promise<void>((resolve) => {
      const poll = setInterval(async () => {
        const { rows } = await target.database.pool.query(
          `select count(*)::int as n from import_progress where kind = 'commitment'`,
        );
        if (rows[0].n > 0) {
          clearInterval(poll);
          first.kill('SIGKILL');
          resolve();
        }
      }, 20);
    });
    await new Promise((resolve) => first.once('exit', resolve));
    const { rows: midway } = await target.database.pool.query(
      `select count(*)::int as n from import_progress where kind = 'commitment' and outcome = 'imported'`,
    );
    expect(midway[0].n).toBeGreaterThan(0);
    expect(midway[0].n).toBeLessThan(1500);

    const second = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
    expect(second.stdout).toMatch(/commitments: \d+ imported/);
    // Every commitment once: one stream each, no event twice.
    const { rows } = await target.database.pool.query(
      `select count(distinct stream)::int as streams, count(*)::int as events,
              count(distinct meta->>'sourceId')::int as sources
         from ledger_entries where stream like 'commitment-%' and type <> 'CommitmentTypeDefined' and meta ? 'importedFrom'`,
    );
    const { rows: source } = await client.query(
      `select (select count(*)::int from public.commitments) as commitments,
              (select count(*)::int from public.commitment_history) as history`,
    );
    const { rows: failed } = await target.database.pool.query(
      `select count(*)::int as n from import_progress where kind = 'commitment' and outcome = 'failed'`,
    );
    expect(rows[0].streams).toBe(source[0].commitments - failed[0].n);
    expect(rows[0].sources).toBe(rows[0].events);
    expect(second.stdout).toMatch(/\(\d+ of them by an earlier run\)/);
    expect(
      await auditLedger(target.database.db, parseVerifierKey(target.command.ledger.verifierKey), {
        cipher: target.command.ledger.cipher,
      }),
    ).toMatchObject({ ok: true });
    const progress = await target.database.pool.query(
      `select count(*)::int as n from import_progress where kind = 'commitment'`,
    );
    expect(progress.rows[0].n).toBe(source[0].commitments);
  } finally {
    await target.close();
  }
}, 120_000);

test('an account whose progress row cannot be written is not kept, others of its group are, and the rerun imports it', async () => {
  const target = await testStack();
  try {
    const run = () => importInto(target);
    // Ana's progress row fails after her profile is appended, as a crash there would leave it.
    await target.database.pool.query(
      `create function refuse_ana() returns trigger language plpgsql as $$
       begin raise exception 'progress refused'; end $$;
       create trigger refuse_ana before insert on import_progress for each row
         when (new.kind = 'user' and new.outcome = 'imported' and new.source_id = '${ana.id}')
         execute function refuse_ana()`,
    );
    const first = await run();
    expect(first.find((r) => r.kind === 'user' && r.sourceId === ana.id)).toMatchObject({
      outcome: 'failed',
    });
    // Her group of accounts was tried again one by one: only she failed.
    expect(first.find((r) => r.kind === 'user' && r.sourceId === ben.id)).toMatchObject({
      outcome: 'imported',
    });
    const accounts = async () =>
      (await target.database.pool.query('select count(*)::int as n from users where id = $1', [ana.id]))
        .rows[0].n;
    expect(await accounts()).toBe(0);

    await target.database.pool.query('drop trigger refuse_ana on import_progress');
    const second = await run();
    expect(second.find((r) => r.kind === 'user' && r.sourceId === ana.id)).toMatchObject({
      outcome: 'imported',
    });
    expect(await accounts()).toBe(1);
    const { rows } = await target.database.pool.query(
      'select count(*)::int as n from ledger_entries where stream = $1',
      [profileStream(ana.id)],
    );
    expect(rows[0].n).toBe(1);
    const signIn = await target.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', email: ana.email, password: ana.password },
    });
    expect(signIn.statusCode).toBe(200);
  } finally {
    await target.close();
  }
}, 120_000);

test('a report that cannot be written after a group of accounts committed leaves them imported', async () => {
  const target = await testStack();
  try {
    const run = () => importInto(target);
    // Ben's address is taken here already, and the row saying so cannot be written.
    const taken = await target.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: ben.email, password: 'correct horse battery', displayName: 'Someone else' },
    });
    expect(taken.statusCode).toBe(201);
    await target.database.pool.query(
      `create function refuse_ben() returns trigger language plpgsql as $$
       begin raise exception 'report refused'; end $$;
       create trigger refuse_ben before insert on import_progress for each row
         when (new.kind = 'user' and new.source_id = '${ben.id}') execute function refuse_ben()`,
    );
    await expect(run()).rejects.toThrow('report refused');
    const outcome = async (id: string) =>
      (
        await target.database.pool.query(
          `select outcome from import_progress where kind = 'user' and source_id = $1`,
          [id],
        )
      ).rows[0]?.outcome;
    expect(await outcome(ana.id)).toBe('imported');

    await target.database.pool.query('drop trigger refuse_ben on import_progress');
    const second = await run();
    expect(second.find((r) => r.kind === 'user' && r.sourceId === ana.id)).toMatchObject({
      outcome: 'imported',
      earlier: true,
    });
    expect(second.find((r) => r.kind === 'user' && r.sourceId === ben.id)).toMatchObject({
      outcome: 'failed',
      reasons: expect.arrayContaining(['an account here has this email already']),
    });
  } finally {
    await target.close();
  }
}, 120_000);
