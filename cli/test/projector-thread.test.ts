import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '@connect/db';
import type { Ledger } from '@connect/ledger';
import type { FastifyBaseLogger } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activeCommitment,
  ORIGIN,
  projectorLedger,
  registerProfile,
} from '../../services/projector/test/support.ts';
import type { TestDatabase } from '../../test/support/database.ts';
import { startProjectorThread } from '../src/projector-thread/thread.ts';

const quiet = { info() {}, warn() {}, error() {} } as unknown as FastifyBaseLogger;

/**
 * Blocks this thread, event loop and all, until every projection's checkpoint reaches `index`:
 * another process watches the database meanwhile. True when they did within `ms`.
 */
function blockUntilProjected(databaseUrl: string, index: number, ms: number): boolean {
  const watcher = `
    import pg from 'pg';
    const client = new pg.Client(process.env.WATCHED_URL);
    await client.connect();
    const until = Date.now() + ${ms};
    for (;;) {
      const { rows } = await client.query('select min(last_index)::int as reached from projection_checkpoints');
      if (rows[0].reached >= ${index}) process.exit(0);
      if (Date.now() > until) process.exit(1);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }`;
  const watched = spawnSync(process.execPath, ['--input-type=module', '-e', watcher], {
    env: { ...process.env, WATCHED_URL: databaseUrl },
    timeout: ms + 10_000,
  });
  return watched.status === 0;
}

async function headIndex(database: TestDatabase): Promise<number> {
  const head = await database.db.selectFrom('ledger_head').select('tree_size').executeTakeFirstOrThrow();
  return head.tree_size - 1;
}

/** Changes the ledger as a hostile operator would: as the table owner, its immutability triggers off. */
async function tamper(database: TestDatabase, text: string, values: unknown[]): Promise<void> {
  const client = await database.pool.connect();
  try {
    await client.query('begin');
    await client.query('set local session_replication_role = replica');
    await client.query(text, values);
    await client.query('commit');
  } finally {
    client.release();
  }
}

async function connectionsTo(database: TestDatabase): Promise<number> {
  const { rows } = await database.pool.query<{ n: number }>(
    'select count(*)::int as n from pg_stat_activity where datname = current_database()',
  );
  return rows[0]?.n ?? 0;
}

describe("connect start's projector thread", () => {
  let database: TestDatabase;
  let ledger: Ledger;
  let dataDir: string;
  let config: Parameters<typeof startProjectorThread>[0]['config'];

  beforeAll(async () => {
    ({ database, ledger, dataDir } = await projectorLedger());
    config = {
      ...loadConfig({ CONNECT_DATA_DIR: dataDir, CONNECT_LEDGER_ORIGIN: ORIGIN, LOG_LEVEL: 'silent' }),
      databaseUrl: database.url,
    };
  });
  afterAll(async () => {
    await ledger.drain();
    await database.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('projects while the main thread is blocked, and answers readiness, status and metrics', async () => {
    const thread = await startProjectorThread({ config, verifierKey: ledger.verifierKey, log: quiet });
    try {
      // The checkpoints are held until PostgreSQL itself lets go of them, 1 s after this thread
      // blocks: the entries appended meanwhile can only be projected while it is blocked.
      const holder = await database.pool.connect();
      try {
        await holder.query('begin; select 1 from projection_checkpoints for update');
        const alice = await registerProfile(ledger, 'Alice');
        const bob = await registerProfile(ledger, 'Bob');
        await activeCommitment(ledger, alice, bob);
        const head = await headIndex(database);
        const released = holder.query('select pg_sleep(1); commit');
        const projected = blockUntilProjected(database.url, head, 20_000);
        await released;
        expect(projected).toBe(true);
      } finally {
        holder.release();
      }

      expect(await thread.readiness()).toEqual({ quarantined: [] });
      const status = await thread.status();
      expect(status.map((s) => s.projection).sort()).toEqual([
        'commitment_types',
        'commitments',
        'notifications',
        'profiles',
      ]);
      expect(status.every((s) => s.state === 'active')).toBe(true);
      const metrics = await thread.metrics();
      const pools = metrics.find((m) => m.name === 'connect_db_pool_connections');
      expect(new Set(pools?.values.map((v) => v.labels.pool))).toEqual(new Set(['projector', 'delivery']));
      expect(metrics.map((m) => m.name)).toContain('connect_notification_queue_jobs');
      const treeSize = (await headIndex(database)) + 1;
      const audited = async () =>
        (await thread.metrics()).find((m) => m.name === 'connect_audit_verified_entries')?.values[0]?.value;
      await expect.poll(audited, { timeout: 20_000 }).toBe(treeSize);
    } finally {
      await thread.close();
    }
  });

  it("does not check again the signature of a checkpoint the main thread's appender signed", async () => {
    const thread = await startProjectorThread({ config, verifierKey: ledger.verifierKey, log: quiet });
    const metric = async (name: string) =>
      Number((await thread.metrics()).find((m) => m.name === name)?.values[0]?.value);
    const auditedToHead = async () =>
      expect
        .poll(() => metric('connect_audit_verified_entries'), { timeout: 20_000 })
        .toBe((await headIndex(database)) + 1);
    const unobserve = ledger.observe({
      appended() {},
      committed() {},
      signed: (checkpoint, note) => thread.signed(checkpoint, note),
    });
    try {
      await auditedToHead();
      // The sweep's first pass checks the checkpoints signed before the thread began; then none.
      const settled = async () => {
        const first = await metric('connect_audit_signatures_checked_total');
        await new Promise((resolve) => setTimeout(resolve, 1000));
        return (await metric('connect_audit_signatures_checked_total')) === first;
      };
      await expect.poll(settled, { timeout: 20_000 }).toBe(true);
      const before = await metric('connect_audit_signatures_checked_total');
      // Five appends one after the other: five checkpoints, each signed here and told.
      for (let i = 0; i < 5; i++) await registerProfile(ledger, `Told ${i}`);
      await auditedToHead();
      expect(await metric('connect_audit_signatures_checked_total')).toBe(before);
      // Five more, not told: the audit checks each one's signature.
      unobserve();
      for (let i = 0; i < 5; i++) await registerProfile(ledger, `Not told ${i}`);
      await auditedToHead();
      expect(await metric('connect_audit_signatures_checked_total')).toBe(before + 5);
    } finally {
      unobserve();
      await thread.close();
    }
  });

  it('runs the continuous audit: a checkpoint altered in the database makes it not ready, naming it', async () => {
    const thread = await startProjectorThread({ config, verifierKey: ledger.verifierKey, log: quiet });
    const { rows } = await database.pool.query<{ tree_size: number; note: string }>(
      'select tree_size, note from ledger_checkpoints order by tree_size desc limit 1',
    );
    const { tree_size: size, note } = rows[0] as { tree_size: number; note: string };
    // A base64 character of the signature (the note ends `…xyzw abc=\n`), changed.
    const altered = `${note.slice(0, -6)}${note.at(-6) === 'A' ? 'B' : 'A'}${note.slice(-5)}`;
    try {
      await tamper(database, 'update ledger_checkpoints set note = $1 where tree_size = $2', [altered, size]);
      await expect
        .poll(
          () =>
            thread.readiness().then(
              () => 'ready',
              (error: Error) => error.message,
            ),
          { timeout: 20_000 },
        )
        .toMatch(new RegExp(`checkpoint of size ${size} does not verify`));
    } finally {
      await thread.close();
      await tamper(database, 'update ledger_checkpoints set note = $1 where tree_size = $2', [note, size]);
    }
  });

  it('once closed, holds no connection and answers that it is gone', async () => {
    const before = await connectionsTo(database);
    const thread = await startProjectorThread({ config, verifierKey: ledger.verifierKey, log: quiet });
    expect(await connectionsTo(database)).toBeGreaterThan(before);
    await thread.close();
    await expect.poll(() => connectionsTo(database), { timeout: 10_000 }).toBeLessThanOrEqual(before);
    await expect(thread.readiness()).rejects.toThrow(/projector thread exited/);
    await thread.close();
  });

  it('that cannot open rejects with the reason, and leaves no connection behind', async () => {
    const before = await connectionsTo(database);
    const emptyDir = await mkdtemp(path.join(os.tmpdir(), 'connect-no-keys-'));
    try {
      await expect(
        startProjectorThread({
          config: { ...config, dataDir: emptyDir },
          verifierKey: ledger.verifierKey,
          log: quiet,
        }),
      ).rejects.toThrow(/wrapped by master key .*, which is not configured/);
    } finally {
      await rm(emptyDir, { recursive: true, force: true });
    }
    await expect.poll(() => connectionsTo(database), { timeout: 10_000 }).toBeLessThanOrEqual(before);
  });
});
