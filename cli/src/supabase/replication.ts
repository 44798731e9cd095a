// The source's changes by PostgreSQL logical replication (pgoutput), where the source allows it: a
// publication of the tables the import reads and a slot named for this Connect ledger, made before
// the first pass reads its snapshot, so every change committed after that snapshot is streamed. The
// slot remembers what was acknowledged, and only what is written here is: a follower stopped or
// killed goes on from there, seeing at worst a few changes twice (the import's steps are idempotent).
import { createHash } from 'node:crypto';
import pg from 'pg';
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import type { SourceChanges } from './source.ts';

export const PUBLICATION = 'connect_import';

/** The tables the import reads, and the column of each naming the user, type or commitment it changes. */
const CHANGED: Record<string, [keyof SourceChanges, string]> = {
  'auth.users': ['users', 'id'],
  'auth.identities': ['users', 'user_id'],
  'public.profiles': ['users', 'id'],
  'public.commitment_types': ['types', 'id'],
  'public.commitments': ['commitments', 'id'],
  'public.commitment_parties': ['commitments', 'commitment_id'],
  'public.commitment_documents': ['commitments', 'commitment_id'],
  'public.commitment_history': ['commitments', 'commitment_id'],
};

/** The slot of the Connect ledger `origin` on a source (a slot name: lower case, digits, _). */
export function slotName(origin: string): string {
  return `connect_import_${createHash('sha256').update(origin).digest('hex').slice(0, 12)}`;
}

const noChanges = (): SourceChanges => ({
  users: new Map(),
  types: new Map(),
  commitments: new Map(),
});

function note(changes: SourceChanges, kind: keyof SourceChanges, id: string, at: Date) {
  const seen = changes[kind].get(id);
  if (!seen || seen < at) changes[kind].set(id, at);
}

/** Adds what `from` changed to `into`, keeping each id's newest time. */
function mergeChanges(into: SourceChanges, from: SourceChanges): SourceChanges {
  for (const kind of ['users', 'types', 'commitments'] as const)
    for (const [id, at] of from[kind]) note(into, kind, id, at);
  return into;
}

/**
 * The user, type or commitment a decoded row change is about, noted in `changes` at `at`. A DELETE
 * carries only the primary key: a party's names its commitment, a document's or history row's does
 * not (and a deleted history row changes nothing that was imported).
 */
export function noteRowChange(changes: SourceChanges, message: Pgoutput.Message, at: Date): void {
  if (message.tag !== 'insert' && message.tag !== 'update' && message.tag !== 'delete') return;
  const table = CHANGED[`${message.relation.schema}.${message.relation.name}`];
  if (!table) return;
  const [kind, column] = table;
  const rows = [
    message.tag === 'delete' ? undefined : message.new,
    message.tag === 'insert' ? undefined : message.key,
    message.tag === 'insert' ? undefined : message.old,
  ];
  for (const row of rows) {
    const id: unknown = row?.[column];
    if (typeof id === 'string') note(changes, kind, id, at);
  }
}

/** Why the source cannot stream its changes to this role, or undefined when it can. */
export async function replicationRefusal(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ wal_level: string; may: boolean; user: string }>(
      `select current_setting('wal_level') as wal_level, current_user as user,
              coalesce((select rolsuper or rolreplication from pg_roles where rolname = current_user), false) as may`,
    );
    const [row] = rows;
    if (!row) return 'the source did not say its wal_level';
    if (row.wal_level !== 'logical') return `the source's wal_level is ${row.wal_level}, not logical`;
    if (!row.may) return `the role ${row.user} has neither SUPERUSER nor REPLICATION`;
    return undefined;
  } finally {
    await client.end();
  }
}

/**
 * The publication and the slot, each made if absent; the slot's acknowledged position. Made before
 * the first pass takes its snapshot, the slot streams everything committed after it.
 */
export async function prepareReplication(url: string, slot: string): Promise<{ confirmed: string }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_publication where pubname = $1', [PUBLICATION]);
    if (rowCount === 0)
      await client.query(`create publication ${PUBLICATION} for table ${Object.keys(CHANGED).join(', ')}`);
    const existing = async () =>
      (
        await client.query<{ plugin: string; database: string; confirmed: string | null; here: string }>(
          `select plugin, database, confirmed_flush_lsn::text as confirmed, current_database() as here
             from pg_replication_slots where slot_name = $1`,
          [slot],
        )
      ).rows[0];
    let found = await existing();
    if (!found) {
      await client.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      found = await existing();
    }
    if (!found?.confirmed || found.plugin !== 'pgoutput' || found.database !== found.here)
      throw new Error(
        `the replication slot ${slot} on the source is not a pgoutput slot of this database; drop it (select pg_drop_replication_slot('${slot}'))`,
      );
    return { confirmed: found.confirmed };
  } finally {
    await client.end();
  }
}

/** Transactions committed in the source, merged: what they changed, up to where, and when. */
export interface ReplicatedChanges {
  changes: SourceChanges;
  /** Just past the last transaction's commit record: acknowledged once its work is written. */
  endLsn: string;
  /** The last transaction's commit time (the source's clock). */
  committedAt: Date;
  /** The transactions' ids, to read the source in a snapshot that sees them (Source.refresh). */
  xids: number[];
}

export interface ChangeStream {
  /**
   * The transactions streamed since the last call, merged; waits up to `waitMs` for one (undefined
   * when none came, or on `signal`). Rejects when the stream failed.
   */
  next(waitMs: number, signal: AbortSignal): Promise<ReplicatedChanges | undefined>;
  /**
   * Tells the source that everything up to `lsn` is written here, so the slot may forget it; without
   * `lsn`, everything streamed so far (call it only when all that `next` gave is written).
   */
  acknowledge(lsn?: string): void;
  close(): Promise<void>;
}

const lsnValue = (lsn: string) => {
  const [high = '0', low = '0'] = lsn.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
};

/** The library reports `lsn + 1` as written; this is the lsn to give it for `lsn`. */
const lsnBefore = (lsn: string) => {
  const value = lsnValue(lsn) - 1n;
  return `${(value >> 32n).toString(16)}/${(value & 0xffffffffn).toString(16)}`.toUpperCase();
};

/** Streams the slot's changes from its acknowledged position `confirmed` on. */
export async function openChangeStream(url: string, slot: string, confirmed: string): Promise<ChangeStream> {
  const service = new LogicalReplicationService(
    { connectionString: url },
    // Nothing is acknowledged by itself: only what acknowledge() says is written.
    { acknowledge: { auto: false, timeoutSeconds: 0 } },
  );
  const committed: ReplicatedChanges[] = [];
  let open: { changes: SourceChanges; at: Date; xid: number } | undefined;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  // Never report less than the slot has: the source would move its position back.
  let acknowledged = confirmed;
  let streamedTo = confirmed;
  const report = (lsn: string) => {
    if (lsnValue(lsn) > lsnValue(acknowledged)) acknowledged = lsn;
    void service.acknowledge(lsnBefore(acknowledged));
  };

  service.on('data', (_lsn: string, message: Pgoutput.Message) => {
    if (message.tag === 'begin')
      open = {
        changes: noChanges(),
        at: new Date(Number(message.commitTime) / 1000),
        xid: message.xid >>> 0,
      };
    else if (message.tag === 'commit') {
      const at = new Date(Number(message.commitTime) / 1000);
      if (open && message.commitEndLsn)
        committed.push({
          changes: open.changes,
          endLsn: message.commitEndLsn,
          committedAt: at,
          xids: [open.xid],
        });
      open = undefined;
      notify();
    } else if (open) noteRowChange(open.changes, message, open.at);
  });
  service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => {
    // Everything committed before a keepalive was streamed before it.
    if (!open && lsnValue(lsn) > lsnValue(streamedTo)) streamedTo = lsn;
    if (shouldRespond) report(acknowledged);
  });
  service.on('error', (error: Error) => {
    failure ??= error;
    notify();
  });

  const started = new Promise<void>((resolve, reject) => {
    service.once('start', () => resolve());
    service
      .subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [PUBLICATION] }), slot)
      .then(
        () => {
          if (!service.isStop()) failure ??= new Error('the source ended the replication stream');
          if (failure) reject(failure);
        },
        (error: Error) => {
          failure ??= error;
          reject(error);
        },
      )
      .finally(notify);
  });
  await started.catch(async (error) => {
    await service.destroy();
    throw error;
  });

  return {
    async next(waitMs, signal) {
      if (committed.length === 0 && !failure && !signal.aborted) {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            resolve();
          };
          const timer = setTimeout(done, waitMs);
          signal.addEventListener('abort', done);
          wake = done;
        });
      }
      if (failure) throw failure;
      if (committed.length === 0) return undefined;
      const all = committed.splice(0);
      const last = all.at(-1) as ReplicatedChanges;
      return {
        changes: all.reduce((merged, each) => mergeChanges(merged, each.changes), noChanges()),
        endLsn: last.endLsn,
        committedAt: last.committedAt,
        xids: all.flatMap((each) => each.xids),
      };
    },
    acknowledge(lsn) {
      if (lsn !== undefined) report(lsn);
      else if (!open && committed.length === 0) report(streamedTo);
      else report(acknowledged);
    },
    async close() {
      await service.destroy();
    },
  };
}
