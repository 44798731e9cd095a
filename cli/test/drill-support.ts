// Shared by the fault drills (drill-*.test.ts): waiting for a condition, the receipts a load of
// commands collected, and the checks that the ledger holds each of them once and the read models
// caught up with it.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));

/** Polls `attempt` until it gives something other than undefined (errors count as not yet). */
export async function eventually<T>(
  what: string,
  attempt: () => Promise<T | undefined>,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const result = await attempt().catch(() => undefined);
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a command answered 2xx with. */
export interface Receipt {
  commitmentId: string;
  version: number;
  events: { index: number; id: string; type: string; leafHash: string }[];
}

/** Anything that runs a query: a pg.Pool or a connected pg.Client. */
export interface Queryable {
  query<R extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/**
 * Receipts whose entries are not in the ledger as answered (index, id, stream, type, leaf hash),
 * each with what is wrong; empty when every one is there.
 */
export async function receiptsMissingFromLedger(db: Queryable, receipts: Receipt[]): Promise<string[]> {
  const events = receipts.flatMap((receipt) =>
    receipt.events.map((event) => ({ ...event, stream: `commitment-${receipt.commitmentId}` })),
  );
  const { rows } = await db.query<{ index: string; id: string; stream: string; type: string; leaf: string }>(
    `select index, id, stream, type, encode(leaf_hash, 'base64') as leaf
       from ledger_entries where index = any($1::bigint[])`,
    [events.map((event) => event.index)],
  );
  const stored = new Map(rows.map((row) => [Number(row.index), row]));
  return events.flatMap((event) => {
    const row = stored.get(event.index);
    if (!row) return [`entry ${event.index} (${event.stream}) is not in the ledger`];
    const same =
      row.id === event.id &&
      row.stream === event.stream &&
      row.type === event.type &&
      row.leaf === event.leafHash;
    return same
      ? []
      : [`entry ${event.index} differs: answered ${JSON.stringify(event)}, stored ${JSON.stringify(row)}`];
  });
}

/** How many commitments each actor drafted, from the ledger. */
export async function draftsByActor(db: Queryable, actors: string[]): Promise<Map<string, number>> {
  const { rows } = await db.query<{ actor: string; n: number }>(
    `select actor, count(*)::int as n from ledger_entries
      where type = 'CommitmentDrafted' and actor = any($1::text[]) group by actor`,
    [actors],
  );
  return new Map(actors.map((actor) => [actor, rows.find((row) => row.actor === actor)?.n ?? 0]));
}

/** True once every projection's checkpoint is at the ledger's head. */
export async function projectionsAtHead(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ behind: number; projections: number }>(
    `select count(*) filter (where c.last_index < h.tree_size - 1)::int as behind, count(*)::int as projections
       from projection_checkpoints c cross join ledger_head h`,
  );
  return rows[0]?.projections !== 0 && rows[0]?.behind === 0;
}

/** A `connect` command with `env` (DATABASE_URL, CONNECT_DATA_DIR): its exit code and what it printed. */
export function runConnect(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string; output: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const printed = { stdout: '', stderr: '', output: '' };
  child.stdout.on('data', (chunk) => {
    printed.stdout += chunk;
    printed.output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    printed.stderr += chunk;
    printed.output += chunk;
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, ...printed })));
}

/** `connect verify ledger` (the audit) with `env`. */
export const verifyLedger = (env: Record<string, string>) => runConnect(['verify', 'ledger'], env);

/** A value of a Prometheus series from a /metrics text, or undefined when it is absent. */
export function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
