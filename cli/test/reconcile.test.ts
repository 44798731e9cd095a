// connect reconcile after an import: the bad rows are the only drift (deleted and anonymous users
// skipped, not drift); with them cleaned up it exits 0; then a change on either side (the source's
// title, response, email, document rows and bytes; a cancellation through Connect's command path)
// is listed, exactly those, and it exits 1.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Commitment, initialState } from '@connect/domain';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { type Stack, testStack } from '../../test/support/stack.ts';
import { importFromSupabase } from '../src/supabase/import.ts';
import {
  compareCommitment,
  compareUsers,
  type Difference,
  formatDifference,
} from '../src/supabase/reconcile.ts';
import { reconcileWithSupabase } from '../src/supabase/reconcile-run.ts';
import { openSource, type SourceCommitmentRows, type SourceUser } from '../src/supabase/source.ts';
import { at, type SeededSource, seedSupabaseSource, sourceIds } from './supabase-source.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
const ids = sourceIds();
const { users, ana, cleo, deleted, anonymous, duplicate } = ids;
let stack: Stack;
let seeded: SeededSource;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const ofCommitment = (name: string) => seeded.commitments[name] as string;

beforeAll(async () => {
  stack = await testStack();
  seeded = await seedSupabaseSource(inject('adminUrl'), ids);
  const from = await openSource(seeded.url);
  await importFromSupabase(
    from,
    {
      db: stack.database.db,
      ledger: stack.command.ledger,
      dataDir: stack.command.dataDir,
      keys: stack.command.keys,
      providers: ['google'],
    },
    { storageDir: seeded.storageDir },
  ).finally(() => from.close());
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await seeded?.close();
});

async function reconcile() {
  const from = await openSource(seeded.url);
  return reconcileWithSupabase(
    from,
    { db: stack.database.db, origin: stack.command.ledger.origin, cipher: stack.command.ledger.cipher },
    { storageDir: seeded.storageDir, batchSize: 5 },
  ).finally(() => from.close());
}

const keys = (differences: Difference[]) => differences.map((d) => `${d.kind} ${d.id} ${d.what}`).sort();

function runCommand(...extra: string[]) {
  return spawnSync(
    process.execPath,
    [BIN, 'reconcile', '--source', seeded.url, '--storage', seeded.storageDir, ...extra],
    {
      env: {
        ...process.env,
        DATABASE_URL: stack.database.url,
        CONNECT_DATA_DIR: stack.command.dataDir,
        CONNECT_LEDGER_ORIGIN: stack.command.ledger.origin,
      },
      encoding: 'utf8',
    },
  );
}

test('after the import the bad rows are the only drift; deleted and anonymous users are skipped', async () => {
  const report = await reconcile();
  expect(keys(report.differences)).toEqual(
    [
      `user ${duplicate} not imported`,
      `commitment ${ofCommitment('unknown-status')} not imported`,
      `commitment ${ofCommitment('bad-currency')} not imported`,
      `commitment ${ofCommitment('missing-file')} document "lost.pdf" version 1`,
      `commitment ${ofCommitment('orphan-party')} party ${seeded.orphanParty}`,
      `commitment ${ofCommitment('orphan-party')} party ${seeded.judge}`,
    ].sort(),
  );
  const failed = report.differences.find((d) => d.id === ofCommitment('unknown-status'));
  expect(failed).toMatchObject({ source: 'Commitment unknown-status (archived)', connect: null });
  expect(failed?.note).toMatch(/the import: failed \(unknown status "archived"\)/);
  expect(report.differences.find((d) => d.id === duplicate)?.note).toMatch(/duplicate email/);
  expect(report.differences.find((d) => d.what === `party ${seeded.judge}`)).toMatchObject({
    source: 'judge, invited',
    connect: null,
  });
  expect(report.skipped.map((s) => `${s.kind} ${s.id} ${s.reason}`).sort()).toEqual(
    [`user ${deleted} soft-deleted in the source`, `user ${anonymous} anonymous in the source`].sort(),
  );
  expect(report.counts).toMatchObject({ users: 28, commitments: 14, differences: 6, skipped: 2 });
});

test('with the bad rows gone from the source, the command finds no drift and exits 0', async () => {
  const { client } = seeded;
  await client.query('delete from auth.users where id = $1', [duplicate]);
  await client.query('delete from public.commitments where id = any($1::uuid[])', [
    [ofCommitment('unknown-status'), ofCommitment('bad-currency')],
  ]);
  await client.query(`delete from public.commitment_documents where name = 'lost.pdf'`);
  await client.query('delete from public.commitment_parties where user_id = any($1::uuid[])', [
    [seeded.orphanParty, seeded.judge],
  ]);
  const run = runCommand();
  expect(run.stderr).toMatch(/commitments \[#+\] 12\/12 rows/);
  expect(run.stdout).toContain(`skipped user ${deleted}: soft-deleted in the source (not drift)`);
  expect(run.stdout).toMatch(/27 users and 12 commitments compared: 0 differences, 2 skipped/);
  expect(run.status).toBe(0);
});

test('a change on either side is listed, exactly those, and the command exits 1', async () => {
  const { client, storageDir } = seeded;
  const user7 = users[7] as (typeof users)[number];
  await client.query(`update public.commitments set title = 'Renamed in Supabase' where id = $1`, [
    ofCommitment('draft'),
  ]);
  await client.query(
    `update public.commitment_parties set status = 'declined' where commitment_id = $1 and user_id = $2`,
    [ofCommitment('pending'), cleo.id],
  );
  await client.query(`update auth.users set email = 'new7@example.test' where id = $1`, [user7.id]);
  await client.query(
    `delete from public.commitment_documents where commitment_id = $1 and name = 'contract.pdf' and version = 1`,
    [ofCommitment('documents')],
  );
  await writeFile(
    path.join(storageDir, 'documents', ofCommitment('documents'), 'annex.pdf.v1'),
    'another annex',
  );

  const token = await stack.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email: ana.email, password: ana.password },
  });
  const cancelled = await stack.app.inject({
    method: 'POST',
    url: `/v1/commitments/${ofCommitment('orphan-party')}/cancel`,
    headers: { authorization: `Bearer ${token.json().access_token}` },
    payload: { reason: 'changed in Connect' },
  });
  expect(cancelled.statusCode).toBe(200);

  const expected: Difference[] = [
    {
      kind: 'commitment',
      id: ofCommitment('draft'),
      what: 'title',
      source: 'Renamed in Supabase',
      connect: 'Commitment draft',
    },
    {
      kind: 'commitment',
      id: ofCommitment('pending'),
      what: `party ${cleo.id} response`,
      source: 'declined',
      connect: 'invited',
    },
    { kind: 'user', id: user7.id, what: 'email', source: 'new7@example.test', connect: 'user7@example.test' },
    {
      kind: 'commitment',
      id: ofCommitment('documents'),
      what: 'document "contract.pdf" version 1',
      source: null,
      connect: sha256('first draft of the contract'),
    },
    {
      kind: 'commitment',
      id: ofCommitment('documents'),
      what: 'document "annex.pdf" version 1',
      source: sha256('another annex'),
      connect: sha256('annex'),
    },
    {
      kind: 'commitment',
      id: ofCommitment('orphan-party'),
      what: 'status',
      source: 'draft',
      connect: 'cancelled',
    },
  ];
  const report = await reconcile();
  expect(keys(report.differences)).toEqual(keys(expected));
  for (const difference of expected) expect(report.differences).toContainEqual(difference);

  const reportFile = path.join(storageDir, 'reconcile.json');
  const run = runCommand('--report', reportFile);
  expect(run.status).toBe(1);
  for (const difference of expected) expect(run.stdout).toContain(formatDifference(difference));
  expect(run.stdout).toContain(
    `email of user ${user7.id}: source "new7@example.test", Connect "user7@example.test"`,
  );
  const written = JSON.parse(await readFile(reportFile, 'utf8'));
  expect(keys(written.differences)).toEqual(keys(expected));
  expect(written.counts).toMatchObject({ differences: 6, skipped: 2 });
});

describe('the comparison itself', () => {
  const someone = '00000000-0000-4000-8000-000000000001';
  const other = '00000000-0000-4000-8000-000000000002';
  const gone = '00000000-0000-4000-8000-000000000003';
  const rows: SourceCommitmentRows = {
    commitment: {
      id: '00000000-0000-4000-8000-0000000000c1',
      type_id: 't',
      creator_id: someone,
      title: '  Lend the bike ',
      description: null,
      terms: { until: 'May' },
      status: 'completed',
      amount_cents: '500',
      currency: 'EUR',
      due_date: at(10),
      created_at: at(1),
      updated_at: at(2),
    },
    parties: [
      {
        commitment_id: 'c',
        user_id: someone,
        role: 'creator',
        status: 'accepted',
        invited_at: at(1),
        responded_at: null,
      },
      {
        commitment_id: 'c',
        user_id: other,
        role: 'participant',
        status: 'accepted',
        invited_at: at(1),
        responded_at: null,
      },
      {
        commitment_id: 'c',
        user_id: gone,
        role: 'witness',
        status: 'invited',
        invited_at: at(1),
        responded_at: null,
      },
    ],
    documents: [
      {
        id: 'd1',
        commitment_id: 'c',
        name: 'a.pdf',
        version: 1,
        storage_path: 'c/a.pdf',
        mime_type: null,
        size_bytes: null,
        uploaded_by: null,
        created_at: at(1),
      },
    ],
    history: [],
  };
  const files = new Map([['d1', { sha256: sha256('a'), size: 1 }]]);
  const state: Commitment = {
    ...initialState(rows.commitment.id),
    exists: true,
    status: 'fulfilled',
    title: 'Lend the bike',
    terms: '{"until":"May"}',
    amount: { minor: 500, currency: 'EUR' },
    dueAt: at(10).toISOString(),
    parties: [
      { userId: someone, role: 'creator', response: 'accepted' },
      { userId: other, role: 'participant', response: 'accepted' },
    ],
    documents: [
      {
        documentId: 'd1',
        name: 'a.pdf',
        mediaType: 'application/octet-stream',
        size: 1,
        sha256: sha256('a'),
        version: 1,
        purpose: 'terms',
        attachedBy: someone,
      },
    ],
  };

  test('the same commitment in our terms (completed → fulfilled, trimmed title) has no difference', () => {
    expect(compareCommitment(rows, files, state, undefined, new Set([gone]))).toEqual({
      differences: [],
      skipped: [
        {
          kind: 'commitment',
          id: rows.commitment.id,
          reason: `party ${gone} is a deleted or anonymous user in the source`,
        },
      ],
    });
  });

  test('a witness who is no deleted user, another amount and a missing file are drift', () => {
    const { differences } = compareCommitment(
      rows,
      new Map([['d1', null]]),
      { ...state, amount: { minor: 700, currency: 'EUR' } },
      undefined,
      new Set(),
    );
    expect(differences.map((d) => [d.what, d.source, d.connect])).toEqual([
      ['amount', '500 EUR', '700 EUR'],
      [`party ${gone}`, 'witness, invited', null],
      ['document "a.pdf" version 1', 'no file documents/c/a.pdf in the storage export', sha256('a')],
    ]);
  });

  test('a commitment Connect has no stream for is one "not imported", with what the import said', () => {
    const { differences } = compareCommitment(
      rows,
      files,
      initialState(rows.commitment.id),
      {
        outcome: 'failed',
        reasons: ['type t was not imported'],
      },
      new Set(),
    );
    expect(differences.map(formatDifference)).toEqual([
      `not imported of commitment ${rows.commitment.id}: source "  Lend the bike  (completed)", Connect (none) (the import: failed (type t was not imported))`,
    ]);
  });

  test('users: email in any case, identities at any provider, a deleted user Connect still has', () => {
    const user = (id: string, email: string, extra: Partial<SourceUser> = {}): SourceUser => ({
      id,
      email,
      encrypted_password: null,
      email_confirmed_at: at(0),
      raw_user_meta_data: null,
      created_at: at(0),
      banned_until: null,
      deleted_at: null,
      is_anonymous: false,
      ...extra,
    });
    const { differences, skipped } = compareUsers(
      {
        users: [user(someone, 'Ana@Example.test'), user(other, 'ben@example.test', { deleted_at: at(3) })],
        identities: [
          {
            provider_id: 'gh-1',
            user_id: someone,
            identity_data: {},
            provider: 'GitHub',
            last_sign_in_at: null,
            created_at: null,
          },
        ],
        profiles: [],
      },
      new Map([
        [someone, { email: 'ana@example.test', verified: false, identities: [] }],
        [other, { email: 'ben@example.test', verified: true, identities: [] }],
      ]),
      new Map(),
    );
    expect(skipped).toEqual([]);
    expect(differences.map((d) => [d.id, d.what, d.source, d.connect])).toEqual([
      [someone, 'verified', 'true', 'false'],
      [someone, 'identity', 'github:gh-1', null],
      [other, 'account', 'skipped: soft-deleted', 'ben@example.test'],
    ]);
  });
});
