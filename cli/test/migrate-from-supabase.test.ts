// A Supabase project (the source schema, in a second database on the same server) imported into a
// whole stack: users sign in with their old passwords, commitments read as the source shows them,
// bad rows are reported, and a rerun imports nothing twice.
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseVerifierKey } from '@connect/crypto';
import { auditLedger } from '@connect/ledger';
import type pg from 'pg';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { type Stack, testStack } from '../../test/support/stack.ts';
import { importFromSupabase } from '../src/supabase/import.ts';
import type { RowReport } from '../src/supabase/report.ts';
import { openSource } from '../src/supabase/source.ts';
import { at, type SeededSource, seedSupabaseSource, sourceIds } from './supabase-source.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
let stack: Stack;
let seeded: SeededSource;
let sourceUrl: string;
let source: pg.Client;
let storageDir: string;
let commitments: Record<string, string>;
let reports: RowReport[];

const ids = sourceIds();
const { users, ana, ben, cleo, banned, deleted, anonymous, duplicate, types } = ids;

beforeAll(async () => {
  stack = await testStack();
  seeded = await seedSupabaseSource(inject('adminUrl'), ids);
  ({ url: sourceUrl, client: source, storageDir, commitments } = seeded);

  const from = await openSource(sourceUrl);
  try {
    reports = await importFromSupabase(
      from,
      {
        db: stack.database.db,
        ledger: stack.command.ledger,
        dataDir: stack.command.dataDir,
        keys: stack.command.keys,
        providers: ['google'],
      },
      { storageDir },
    );
  } finally {
    await from.close();
  }
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await seeded?.close();
});

const reportOf = (kind: string, id: string) => reports.find((r) => r.kind === kind && r.sourceId === id);
const signIn = (email: string, password: string) =>
  stack.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', email, password },
  });

test('users keep their ids, emails and passwords; the bcrypt hash becomes scrypt at the first sign-in', async () => {
  for (const user of [ana, users[1]] as (typeof users)[number][]) {
    const response = await signIn(user.email, user.password);
    expect(response.statusCode).toBe(200);
    expect(response.json().user).toMatchObject({ id: user.id, email: user.email, emailVerified: true });
    const { rows } = await stack.database.pool.query('select password_hash from users where id = $1', [
      user.id,
    ]);
    expect(rows[0].password_hash).toMatch(/^scrypt\$/);
    expect((await signIn(user.email, user.password)).statusCode).toBe(200);
  }
  expect((await signIn(cleo.email, 'not the password')).statusCode).toBe(400);
  const { rows } = await stack.database.pool.query(
    'select provider, subject, email_verified from oidc_identities where user_id = $1',
    [ben.id],
  );
  expect(rows).toEqual([{ provider: 'google', subject: 'google-subject-1', email_verified: true }]);
});

test('a banned user is imported but refused; deleted, anonymous and duplicate users are reported', async () => {
  expect(reportOf('user', banned.id)?.outcome).toBe('imported');
  const refused = await signIn(banned.email, banned.password);
  expect(refused.statusCode).toBe(403);
  expect(refused.json().detail).toMatch(/banned until/);
  expect(reportOf('user', deleted)).toMatchObject({ outcome: 'skipped', reasons: ['soft-deleted'] });
  expect(reportOf('user', anonymous)).toMatchObject({ outcome: 'skipped', reasons: ['anonymous'] });
  expect(reportOf('user', duplicate)?.outcome).toBe('failed');
  expect(reportOf('user', duplicate)?.reasons.join()).toMatch(/duplicate email/);
  expect(JSON.stringify(reports)).not.toMatch(/\$2[aby]\$/);
});

test('types are defined, unknown config keys reported', async () => {
  expect(reportOf('type', types.loan)?.reasons).toEqual(['unknown config key "colour" left out']);
  const types_ = (
    await stack.app.inject({ method: 'GET', url: '/v1/commitment-types', headers: await auth(ana) })
  ).json();
  expect(JSON.stringify(types_)).toMatch(/"loan"/);
});

async function auth(user: { email: string; password: string }) {
  const token = (await signIn(user.email, user.password)).json().access_token;
  const { rows } = await stack.database.pool.query('select max(index)::int as last from ledger_entries');
  return { authorization: `Bearer ${token}`, 'connect-min-index': String(rows[0].last) };
}

async function read(name: string) {
  const id = commitments[name] as string;
  const response = await stack.app.inject({
    method: 'GET',
    url: `/v1/commitments/${id}`,
    headers: await auth(ana),
  });
  expect(response.statusCode).toBe(200);
  return response.json();
}

const STATUS: Record<string, string> = { pending: 'proposed', completed: 'fulfilled' };

test('every status replays from its history to the source state, read through the query service', async () => {
  for (const status of ['draft', 'pending', 'active', 'completed', 'disputed', 'breached', 'cancelled']) {
    expect(reportOf('commitment', commitments[status] as string)).toMatchObject({
      outcome: 'imported',
      reasons: [],
    });
    const commitment = await read(status);
    expect(commitment.status).toBe(STATUS[status] ?? status);
    const { rows } = await source.query(
      'select user_id as "userId", role, status as response from public.commitment_parties where commitment_id = $1',
      [commitments[status]],
    );
    const parties = commitment.parties.map((p: { userId: string; role: string; response: string }) => ({
      userId: p.userId,
      role: p.role,
      response: p.response,
    }));
    const sort = (list: { userId: string }[]) => [...list].sort((a, b) => a.userId.localeCompare(b.userId));
    expect(sort(parties)).toEqual(sort(rows));
    expect(commitment.dueAt).toBe(at(100).toISOString());
  }
  const entries = await stack.database.pool.query(
    `select type, meta from ledger_entries where stream = $1 order by version`,
    [`commitment-${commitments.breached}`],
  );
  expect(entries.rows.map((r) => r.type)).toEqual([
    'CommitmentDrafted',
    'PartyInvited',
    'PartyInvited',
    'CommitmentProposed',
    'InvitationAccepted',
    'InvitationAccepted',
    'CommitmentActivated',
    'CommitmentDisputed',
    'DisputeResolved',
  ]);
  expect(entries.rows[0].meta).toMatchObject({
    importedFrom: 'supabase',
    originalAt: at(1).toISOString(),
    originalActor: ana.id,
  });
});

test('documents keep every version with the SHA-256 of the exported bytes; a missing file is reported', async () => {
  const commitment = await read('documents');
  expect(commitment.amount).toEqual({ minor: 125_000, currency: 'EUR' });
  const contract = commitment.documents.find((d: { name: string }) => d.name === 'contract.pdf');
  expect(contract.version).toBe(2);
  const { createHash } = await import('node:crypto');
  expect(contract.sha256).toBe(createHash('sha256').update('signed contract').digest('hex'));
  const content = await stack.app.inject({
    method: 'GET',
    url: `/v1/commitments/${commitments.documents}/documents/${contract.documentId}/content?version=1`,
    headers: await auth(ana),
  });
  expect(content.body).toBe('first draft of the contract');

  const missing = reportOf('commitment', commitments['missing-file'] as string);
  expect(missing?.outcome).toBe('imported');
  expect(missing?.reasons.join()).toMatch(/"lost.pdf" version 1 left out: file .* missing/);
  expect((await read('missing-file')).documents.map((d: { name: string }) => d.name)).toEqual(['kept.pdf']);
});

test('bad rows are reported per row and never leave half a commitment', async () => {
  expect(reportOf('commitment', commitments['unknown-status'] as string)).toMatchObject({
    outcome: 'failed',
    reasons: ['unknown status "archived"'],
  });
  expect(reportOf('commitment', commitments['bad-currency'] as string)).toMatchObject({
    outcome: 'failed',
    reasons: ['invalid currency "ZZZ"'],
  });
  const orphan = reportOf('commitment', commitments['orphan-party'] as string);
  expect(orphan?.outcome).toBe('imported');
  expect(orphan?.reasons.join('\n')).toMatch(/orphan row/);
  expect(orphan?.reasons.join('\n')).toMatch(/unknown role "judge"/);
  for (const name of ['unknown-status', 'bad-currency']) {
    const { rows } = await stack.database.pool.query(
      'select count(*)::int as n from ledger_entries where stream = $1',
      [`commitment-${commitments[name]}`],
    );
    expect(rows[0].n).toBe(0);
  }
  for (const name of ['no-history', 'contradicting']) {
    expect(reportOf('commitment', commitments[name] as string)?.reasons.join()).toMatch(
      name === 'no-history' ? /no history/ : /contradicts the current row/,
    );
    // (The deadline, long past, may be marked missed since: news from here on, not imported.)
    const { rows } = await stack.database.pool.query(
      `select type from ledger_entries where stream = $1 and type <> 'DeadlineMissed'`,
      [`commitment-${commitments[name]}`],
    );
    expect(rows).toEqual([{ type: 'CommitmentImported' }]);
    expect((await read(name)).status).toBe('active');
  }
});

test('the ledger audits clean, and a rerun imports nothing twice', async () => {
  const key = parseVerifierKey(stack.command.ledger.verifierKey);
  expect(await auditLedger(stack.database.db, key, { cipher: stack.command.ledger.cipher })).toMatchObject({
    ok: true,
  });
  const count = async () =>
    (await stack.database.pool.query('select count(*)::int as n from ledger_entries')).rows[0].n;
  const before = await count();
  const from = await openSource(sourceUrl);
  const again = await importFromSupabase(
    from,
    {
      db: stack.database.db,
      ledger: stack.command.ledger,
      dataDir: stack.command.dataDir,
      keys: stack.command.keys,
      providers: ['google'],
    },
    { storageDir },
  ).finally(() => from.close());
  expect(await count()).toBe(before);
  expect(again.filter((r) => r.outcome === 'imported').every((r) => r.earlier)).toBe(true);
  expect(
    again
      .filter((r) => r.outcome === 'failed')
      .map((r) => r.sourceId)
      .sort(),
  ).toEqual(
    reports
      .filter((r) => r.outcome === 'failed')
      .map((r) => r.sourceId)
      .sort(),
  );

  // The command itself: the same again, the report printed and written as JSON; exit 1 for the failed rows.
  const reportFile = path.join(storageDir, 'report.json');
  const run = spawnSync(
    process.execPath,
    [BIN, 'migrate-from-supabase', '--source', sourceUrl, '--storage', storageDir, '--report', reportFile],
    {
      env: {
        ...process.env,
        DATABASE_URL: stack.database.url,
        CONNECT_DATA_DIR: stack.command.dataDir,
        CONNECT_LEDGER_ORIGIN: stack.command.ledger.origin,
        CONNECT_LEDGER_KEY: Buffer.alloc(32, 11).toString('base64'),
      },
      encoding: 'utf8',
    },
  );
  expect(run.stderr).toMatch(/commitments \[#+\] \d+\/\d+ rows/);
  expect(run.stdout).toMatch(
    /commitments: 12 imported, 0 skipped, 2 failed \(12 of them by an earlier run\)/,
  );
  expect(run.stdout).toMatch(/failed commitment .*: unknown status "archived"/);
  expect(run.status).toBe(1);
  const written = JSON.parse(await readFile(reportFile, 'utf8'));
  expect(written.counts.user).toEqual({ imported: 25, skipped: 2, failed: 1, earlier: 27 });
  expect(await count()).toBe(before);
});
