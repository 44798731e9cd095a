// The continuous audit, against a real ledger: appends keep it green and moving; an entry or a
// stored tree hash altered in SQL behind its back is found within seconds, turns /readyz red
// naming it, and shows on /metrics.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '@connect/db';
import { createServer } from '@connect/http';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { type Ledger, type LedgerMonitor, monitorLedger, startContinuousAudit } from '../src/index.ts';
import { event, testLedger } from './support.ts';

let database: TestDatabase;
let ledger: Ledger;
let dataDir: string;

beforeAll(async () => {
  ({ database, ledger } = await testLedger());
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-audit-'));
  await appendNotes(20);
});
afterAll(async () => {
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function appendNotes(count: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      ledger.append({
        stream: `s-${i % 3}`,
        expectedVersion: 'any',
        actor: 'ana',
        events: [event('Noted', { i })],
      }),
    ),
  );
}

/** A server as a service process has one, watching this test's ledger. */
function monitoredServer(): { app: FastifyInstance; monitor: LedgerMonitor } {
  const app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  const monitor = monitorLedger(
    app,
    { database, appendPool: database.pool, ledger, config: loadConfig({ CONNECT_DATA_DIR: dataDir }) },
    { audit: true },
  );
  app.addHook('onClose', () => monitor.close());
  return { app, monitor };
}

async function scrape(app: FastifyInstance): Promise<Record<string, number>> {
  const response = await app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode).toBe(200);
  const values: Record<string, number> = {};
  for (const line of response.body.split('\n')) {
    const match = /^(connect_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) values[match[1] as string] = Number(match[2]);
  }
  return values;
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// As a hostile operator would: as the table owner, with the immutability triggers off.
async function tamper(sql: string): Promise<void> {
  const client = await database.pool.connect();
  try {
    await client.query('begin');
    await client.query('set local session_replication_role = replica');
    await client.query(sql);
    await client.query('commit');
  } finally {
    client.release();
  }
}

test('appends keep the audit green and moving, with ledger and append series on /metrics', async () => {
  const { app } = monitoredServer();
  try {
    const first = await until('a first audit round', async () => {
      const values = await scrape(app);
      return (values.connect_audit_last_success_timestamp_seconds ?? 0) > 0 && values;
    });
    expect(first.connect_audit_verified_entries).toBe(20);
    expect(first.connect_audit_failures_total).toBe(0);

    await appendNotes(15);
    const later = await until('the audit to verify the new entries', async () => {
      const values = await scrape(app);
      return values.connect_audit_verified_entries === 35 && values;
    });
    expect(later.connect_audit_last_success_timestamp_seconds).toBeGreaterThanOrEqual(
      first.connect_audit_last_success_timestamp_seconds as number,
    );
    expect(later.connect_ledger_entries).toBe(35);
    expect(later.connect_ledger_checkpoint_tree_size).toBe(35);
    expect(later.connect_ledger_checkpoint_age_seconds).toBeLessThan(60);
    expect(later.connect_database_up).toBe(1);
    expect(later['connect_ledger_appends_total{outcome="appended"}']).toBe(15);
    expect(later['connect_ledger_appends_total{outcome="failed"}']).toBe(0);
    expect(later.connect_ledger_append_batch_entries_sum).toBe(15);
    expect(later['connect_db_pool_connections{pool="main",state="total"}']).toBeGreaterThan(0);
    expect(later.connect_data_dir_free_bytes).toBeGreaterThan(0);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  } finally {
    await app.close();
  }
});

test('the sweep keeps its pace however many rounds appends set off', async () => {
  const audit = startContinuousAudit(
    {
      pool: database.pool,
      db: database.db,
      origin: ledger.origin,
      cipher: ledger.cipher,
      verifierKey: ledger.verifierKey,
    },
    { log: { info() {}, warn() {}, error() {} }, sweepPerSecond: 40 },
  );
  try {
    const started = Date.now();
    // One append after another: each NOTIFY sets off a round.
    for (let i = 0; i < 60; i++) await appendNotes(1);
    await until('the sweep to start', async () => audit.status().sweptEntries > 0);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const seconds = (Date.now() - started) / 1000;
    const { sweptEntries, failures } = audit.status();
    expect(failures).toBe(0);
    // At most its pace, and one second's worth built up before the first sweep.
    expect(sweptEntries).toBeLessThanOrEqual(Math.ceil(40 * seconds) + 40);
  } finally {
    await audit.close();
  }
});

test('an entry altered in SQL is found within seconds: /readyz 503 names it, /metrics counts it', async () => {
  const { app } = monitoredServer();
  const original = (await database.pool.query('select data from ledger_entries where index = 3')).rows[0];
  try {
    await until(
      'a first audit round',
      async () => (await scrape(app)).connect_audit_last_success_timestamp_seconds,
    );
    await tamper(`update ledger_entries set data = '{"i": 99}'::jsonb where index = 3`);
    const readyz = await until('/readyz to turn red', async () => {
      const response = await app.inject({ method: 'GET', url: '/readyz' });
      return response.statusCode === 503 && response;
    });
    expect(readyz.json().detail).toMatch(/ledger audit failed: entry 3/);
    const values = await scrape(app);
    expect(values.connect_audit_failures_total).toBe(1);
    // Appends go on, but the audit has stopped: its last success no longer moves.
    const stoppedAt = values.connect_audit_last_success_timestamp_seconds;
    await appendNotes(3);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await scrape(app)).connect_audit_last_success_timestamp_seconds).toBe(stoppedAt);
  } finally {
    await app.close();
    await tamper(
      `update ledger_entries set data = '${JSON.stringify(original.data)}'::jsonb where index = 3`,
    );
  }
});

test('a checkpoint this process signed, its stored note then altered, is checked and refused', async () => {
  await appendNotes(2);
  const { rows } = await database.pool.query(
    'select tree_size, note from ledger_checkpoints order by tree_size desc limit 1',
  );
  const { tree_size: size, note } = rows[0] as { tree_size: number; note: string };
  expect(ledger.signedHere(size, note)?.treeSize).toBe(size);
  // A base64 character of the signature (the note ends `…xyzw abc=\n`), changed.
  const changed = note.at(-6) === 'A' ? 'B' : 'A';
  const altered = `${note.slice(0, -6)}${changed}${note.slice(-5)}`;
  expect(altered).not.toBe(note);
  expect(ledger.signedHere(size, altered)).toBeUndefined();
  await tamper(`update ledger_checkpoints set note = '${altered}' where tree_size = ${size}`);
  const audit = startContinuousAudit(
    {
      pool: database.pool,
      db: database.db,
      origin: ledger.origin,
      cipher: ledger.cipher,
      verifierKey: ledger.verifierKey,
      signedHere: ledger.signedHere,
    },
    { log: { info() {}, warn() {}, error() {} } },
  );
  try {
    await until('the audit to fail', async () => audit.status().failure);
    expect(audit.status().failure).toMatch(new RegExp(`checkpoint of size ${size} does not verify`));
  } finally {
    await audit.close();
    await tamper(`update ledger_checkpoints set note = '${note}' where tree_size = ${size}`);
  }
});

test('a checkpoint note the sweep has verified, then altered, is opened again and refused', async () => {
  const audit = startContinuousAudit(
    {
      pool: database.pool,
      db: database.db,
      origin: ledger.origin,
      cipher: ledger.cipher,
      verifierKey: ledger.verifierKey,
    },
    { log: { info() {}, warn() {}, error() {} }, pollMs: 100, sweepPerSecond: 100_000 },
  );
  const { rows } = await database.pool.query(
    'select tree_size, note from ledger_checkpoints where tree_size > 0 order by tree_size limit 1',
  );
  const { tree_size: size, note } = rows[0] as { tree_size: number; note: string };
  const changed = note.at(-6) === 'A' ? 'B' : 'A';
  try {
    // A whole pass of the sweep: every note verified once, and so known to the audit.
    await until('a full sweep', async () => {
      const status = audit.status();
      return status.verifiedEntries > 0 && status.sweptEntries >= status.verifiedEntries;
    });
    expect(audit.status().failure).toBeUndefined();
    await tamper(
      `update ledger_checkpoints set note = '${note.slice(0, -6)}${changed}${note.slice(-5)}' where tree_size = ${size}`,
    );
    await until('the audit to fail', async () => audit.status().failure);
    expect(audit.status().failure).toMatch(new RegExp(`checkpoint of size ${size} does not verify`));
  } finally {
    await audit.close();
    await tamper(`update ledger_checkpoints set note = '${note}' where tree_size = ${size}`);
  }
});

test('a stored tree hash altered in SQL is found within seconds', async () => {
  const { app, monitor } = monitoredServer();
  try {
    await until('a first clean audit round', async () => monitor.audit?.status().lastSuccessAt);
    await tamper(`update ledger_tree set hash = sha256(hash) where level = 2 and idx = 1`);
    const readyz = await until('/readyz to turn red', async () => {
      const response = await app.inject({ method: 'GET', url: '/readyz' });
      return response.statusCode === 503 && response;
    });
    expect(readyz.json().detail).toMatch(
      /ledger audit failed: .*tree hash 2\/1|ledger audit failed: .*consistent/,
    );
    expect((await scrape(app)).connect_audit_failures_total).toBe(1);
  } finally {
    await app.close();
  }
});

test('/metrics: a token when CONNECT_METRICS_TOKEN is set, else loopback requests only', async () => {
  const open = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  expect((await open.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  const remote = await open.inject({ method: 'GET', url: '/metrics', remoteAddress: '203.0.113.9' });
  expect(remote.statusCode).toBe(403);
  const guarded = createServer({
    logLevel: 'silent',
    checkReady: async () => undefined,
    metricsToken: 'a-long-enough-metrics-token',
  });
  expect((await guarded.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
  const wrong = { authorization: 'Bearer not-the-token' };
  expect((await guarded.inject({ method: 'GET', url: '/metrics', headers: wrong })).statusCode).toBe(401);
  const right = { authorization: 'Bearer a-long-enough-metrics-token' };
  const ok = await guarded.inject({
    method: 'GET',
    url: '/metrics',
    headers: right,
    remoteAddress: '203.0.113.9',
  });
  expect(ok.statusCode).toBe(200);
  expect(ok.body).toContain('http_request_duration_seconds');
  await open.close();
  await guarded.close();
});

test('a column a migration adds to the ledger while the audit runs does not stop it', async () => {
  // Two connections, one of them listening: the reads after the change run on the connection that
  // prepared them before it.
  const own = await testLedger({ poolSize: 2 });
  const warnings: unknown[] = [];
  const audit = startContinuousAudit(
    {
      pool: own.database.pool,
      db: own.database.db,
      origin: own.ledger.origin,
      cipher: own.ledger.cipher,
      verifierKey: own.ledger.verifierKey,
    },
    {
      log: { info() {}, warn: (entry) => warnings.push(entry), error() {} },
      pollMs: 100,
      sweepPerSecond: 100_000,
    },
  );
  const note = (i: number) =>
    own.ledger.append({ stream: 's', expectedVersion: 'any', actor: 'ana', events: [event('Noted', { i })] });
  try {
    for (let i = 0; i < 3; i++) await note(i);
    await until('the audit to verify them', async () => audit.status().verifiedEntries === 3);
    await own.database.pool.query('alter table ledger_entries add column noted_later text');
    for (let i = 3; i < 6; i++) await note(i);
    await until(
      'the audit to verify the entries after the change',
      async () => audit.status().verifiedEntries === 6,
    );
    expect(warnings).toEqual([]);
    expect(audit.status().failures).toBe(0);
  } finally {
    await audit.close();
    await own.database.close();
  }
});
