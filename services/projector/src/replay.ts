// Rebuilds a projection's read models from the ledger while the live ones keep serving: new tables
// are built beside them, catch up to the head, and then replace them in one transaction, under
// the projection's checkpoint lock so the live runner neither misses nor repeats an entry.
import { errorCode, PROJECTED_CHANNEL } from '@connect/db';
import type { LedgerSource } from '@connect/ledger';
import type pg from 'pg';
import { readEntriesAfter } from './batch.ts';
import type { Projection, Tables } from './projection.ts';
import { applyOrQuarantine, type Quarantined, recordQuarantined } from './quarantine.ts';
import { ident } from './sql.ts';

const SUFFIX = '__replay';
const LOCK_NOT_AVAILABLE = '55P03';
const MAX_SWAP_ATTEMPTS = 200;

export interface ReplayProgress {
  projection: string;
  projected: number;
  /** Entries in the ledger when the replay looked last. */
  total: number;
  eventsPerSecond: number;
  etaSeconds: number;
}

export interface ReplayResult {
  projection: string;
  events: number;
  seconds: number;
  lastIndex: number;
  /** Streams set aside because an entry of theirs still cannot be applied. */
  quarantined: Quarantined[];
}

export async function replayProjection(
  deps: { pool: pg.Pool } & LedgerSource,
  projection: Projection,
  options: { batchSize?: number; onProgress?(progress: ReplayProgress): void } = {},
): Promise<ReplayResult> {
  const { pool } = deps;
  const batchSize = options.batchSize ?? 5000;
  const tables: Tables = Object.fromEntries(projection.tables.map((t) => [t, `${t}${SUFFIX}`]));
  const started = performance.now();
  let position = -1;
  let projected = 0;
  // Replay starts the list of streams set aside anew: what a fix repaired comes back.
  let skip = new Set<string>();
  let quarantined: Quarantined[] = [];

  const report = async () => {
    if (!options.onProgress) return;
    const { rows } = await pool.query<{ tree_size: number }>('select tree_size from ledger_head');
    const total = rows[0]?.tree_size ?? 0;
    const seconds = (performance.now() - started) / 1000;
    const eventsPerSecond = projected / Math.max(seconds, 0.001);
    options.onProgress({
      projection: projection.name,
      projected: position + 1,
      total,
      eventsPerSecond,
      etaSeconds: eventsPerSecond > 0 ? Math.max(0, total - position - 1) / eventsPerSecond : 0,
    });
  };

  /** Projects into the new tables until the ledger has nothing more; each batch in a transaction of its own unless the caller's. */
  const catchUp = async (client: pg.ClientBase, inTransaction = false): Promise<void> => {
    for (;;) {
      const entries = await readEntriesAfter(client, deps, position, batchSize);
      if (entries.length === 0) return;
      if (!inTransaction) await client.query('begin');
      quarantined.push(...(await applyOrQuarantine(client, projection, entries, tables, skip, deps.cipher)));
      if (!inTransaction) await client.query('commit');
      position = entries.at(-1)?.index as number;
      projected += entries.length;
      await report();
    }
  };

  const client = await pool.connect();
  try {
    await client.query('begin');
    for (const table of projection.tables) {
      await client.query(`drop table if exists ${ident(`${table}${SUFFIX}`)}`);
      await client.query(`create table ${ident(`${table}${SUFFIX}`)} (like ${ident(table)} including all)`);
    }
    await client.query('commit');

    // Most of the work, while the live tables keep serving and updating. The new tables are
    // private until the switch (a replay that dies is dropped by the next).
    await catchUp(client);
    // Statistics before the tables serve: without them the planner guesses, and a list page of a
    // just-replayed table was planned as a big enough query to compile (JIT) on every request.
    for (const table of projection.tables) await client.query(`analyze ${ident(`${table}${SUFFIX}`)}`);

    // The switch: hold the live runner (its checkpoint row), take the last few entries, swap.
    // Readers lock the tables in their own order; rather than risk a deadlock that could fail a
    // read, a swap that cannot get its locks at once gives way and tries again.
    for (let attempt = 1; ; attempt++) {
      const before = { position, projected, skip: new Set(skip), quarantined: [...quarantined] };
      try {
        await swapIn(
          client,
          projection,
          tables,
          () => catchUp(client, true),
          () => position,
          () => quarantined,
        );
        break;
      } catch (error) {
        await client.query('rollback').catch(() => undefined);
        if (errorCode(error) !== LOCK_NOT_AVAILABLE || attempt >= MAX_SWAP_ATTEMPTS) throw error;
        ({ position, projected, skip, quarantined } = before);
        await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 100));
      }
    }
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
  return {
    projection: projection.name,
    events: projected,
    seconds: (performance.now() - started) / 1000,
    lastIndex: position,
    quarantined,
  };
}

/** In one transaction: catch up the last entries, then put the new tables in the live ones' place. */
async function swapIn(
  client: pg.ClientBase,
  projection: Projection,
  tables: Tables,
  catchUp: () => Promise<void>,
  position: () => number,
  quarantined: () => Quarantined[],
): Promise<void> {
  await client.query('begin');
  await client.query('select last_index from projection_checkpoints where projection = $1 for update', [
    projection.name,
  ]);
  await catchUp();
  const { rows: policies } = await client.query<{ tablename: string; qual: string }>(
    `select tablename, qual from pg_policies
      where schemaname = current_schema() and policyname = 'reader_sees' and tablename = any($1)`,
    [projection.tables],
  );
  await client.query("set local lock_timeout = '200ms'");
  await client.query(`lock table ${projection.tables.map(ident).join(', ')} in access exclusive mode`);
  for (const table of projection.tables) {
    await client.query(`drop table ${ident(table)}`);
    await client.query(`alter table ${ident(tables[table] as string)} rename to ${ident(table)}`);
    const { rows: indexes } = await client.query<{ indexname: string }>(
      'select indexname from pg_indexes where schemaname = current_schema() and tablename = $1',
      [table],
    );
    for (const { indexname } of indexes) {
      if (indexname.includes(SUFFIX)) {
        await client.query(
          `alter index ${ident(indexname)} rename to ${ident(indexname.replace(SUFFIX, ''))}`,
        );
      }
    }
    const policy = policies.find((p) => p.tablename === table);
    if (policy) await client.query('select connect_protect_read_model($1, $2)', [table, policy.qual]);
  }
  await client.query(
    'update projection_checkpoints set last_index = $2, updated_at = now() where projection = $1',
    [projection.name, position()],
  );
  await client.query('delete from projection_quarantine where projection = $1', [projection.name]);
  await recordQuarantined(client, projection.name, quarantined());
  await client.query('select pg_notify($1, $2)', [PROJECTED_CHANNEL, `${projection.name}:${position()}`]);
  await client.query('commit');
}
