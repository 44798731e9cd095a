// Reading a Supabase project (the tables of source-schema.sql) over a plain pg connection. Rows come
// as the source holds them; what they mean is map-*.ts's business.
import pg from 'pg';

export interface SourceUser {
  id: string;
  email: string | null;
  encrypted_password: string | null;
  email_confirmed_at: Date | null;
  raw_user_meta_data: Record<string, unknown> | null;
  created_at: Date | null;
  banned_until: Date | null;
  deleted_at: Date | null;
  is_anonymous: boolean;
}

export interface SourceIdentity {
  provider_id: string;
  user_id: string;
  identity_data: Record<string, unknown>;
  provider: string;
  last_sign_in_at: Date | null;
  created_at: Date | null;
}

export interface SourceProfile {
  id: string;
  display_name: string | null;
  avatar_url: string | null;
}

export interface SourceType {
  id: string;
  name: string;
  description: string | null;
  config: Record<string, unknown>;
}

export interface SourceCommitment {
  id: string;
  type_id: string;
  creator_id: string;
  title: string;
  description: string | null;
  terms: unknown;
  status: string;
  /** bigint arrives as text. */
  amount_cents: string | null;
  currency: string | null;
  due_date: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface SourceParty {
  commitment_id: string;
  user_id: string;
  role: string;
  status: string;
  invited_at: Date;
  responded_at: Date | null;
}

export interface SourceDocument {
  id: string;
  commitment_id: string;
  name: string;
  version: number;
  storage_path: string;
  mime_type: string | null;
  size_bytes: string | null;
  uploaded_by: string | null;
  created_at: Date;
}

export interface SourceHistory {
  id: string;
  commitment_id: string;
  changed_by: string | null;
  change_type: string;
  old_data: Record<string, unknown> | null;
  new_data: Record<string, unknown> | null;
  created_at: Date;
}

/** One commitment and the rows that hang off it. */
export interface SourceCommitmentRows {
  commitment: SourceCommitment;
  parties: SourceParty[];
  documents: SourceDocument[];
  history: SourceHistory[];
}

/** What changed in the source at or after a time: ids with the time of their newest change. */
export interface SourceChanges {
  users: Map<string, Date>;
  types: Map<string, Date>;
  commitments: Map<string, Date>;
}

export interface Source {
  /** All users, or those of `ids`; with their identities and profiles likewise. */
  users(ids?: string[]): Promise<SourceUser[]>;
  identities(userIds?: string[]): Promise<SourceIdentity[]>;
  profiles(userIds?: string[]): Promise<SourceProfile[]>;
  types(): Promise<SourceType[]>;
  commitmentIds(): Promise<string[]>;
  /** The commitments of `ids`, each with its parties, documents and history (in order). */
  commitments(ids: string[]): Promise<SourceCommitmentRows[]>;
  /**
   * Every commitment with its rows, in commitmentIds() order: each table read once, in that order,
   * through cursors. For reading them all; commitments(ids) of batch after batch would scan the
   * history and documents once per batch, since nothing indexes them by commitment.
   */
  everyCommitment(fetchSize?: number): AsyncIterable<SourceCommitmentRows>;
  /**
   * Ends the snapshot read so far and begins a new one; the source's clock at its start. With
   * `xids` (transactions logical replication streamed, which may be streamed a moment before they
   * are visible to others), a snapshot that sees them all.
   */
  refresh(xids?: number[]): Promise<Date>;
  /**
   * Users, types and commitments with a row written at or after `since` (the source's clock), by
   * the timestamps the app keeps: a commitment counts as changed when it, a party, a document or a
   * history row of it is. A party removed without history or updated_at leaves no trace here.
   */
  changedSince(since: Date): Promise<SourceChanges>;
  /**
   * What a second connection needs to read the snapshot this one reads now (openSource(url, {
   * snapshot })); good until this one's snapshot ends (refresh, close).
   */
  share(): Promise<SharedSnapshot>;
  close(): Promise<void>;
}

export interface SharedSnapshot {
  url: string;
  /** A snapshot id from pg_export_snapshot(). */
  snapshot: string;
}

/** The order of commitmentIds() and everyCommitment(). */
const COMMITMENT_ORDER = 'created_at, id';
/** Rows fetched from a cursor at a time, by default. */
const CURSOR_CHUNK = 1000;

type ChildRow = (SourceParty | SourceDocument | SourceHistory) & { commitment_id: string };

/** The tables of a commitment's rows (each as `t`): what is read of each, in which order, and where it goes. */
const CHILD_TABLES: {
  from: string;
  columns: string;
  order: string;
  collect(rows: SourceCommitmentRows | undefined, row: ChildRow): void;
}[] = [
  {
    from: 'public.commitment_parties t',
    columns: 't.*',
    order: 't.invited_at, t.user_id',
    collect: (rows, row) => rows?.parties.push(row as SourceParty),
  },
  {
    from: 'public.commitment_documents t',
    columns: 't.*',
    order: 't.name, t.version',
    collect: (rows, row) => rows?.documents.push(row as SourceDocument),
  },
  {
    from: 'public.commitment_history t',
    columns: 't.id::text, t.commitment_id, t.changed_by, t.change_type, t.old_data, t.new_data, t.created_at',
    order: 't.created_at, t.id',
    collect: (rows, row) => rows?.history.push(row as SourceHistory),
  },
];

const withoutRows = (commitment: SourceCommitment): SourceCommitmentRows => ({
  commitment,
  parties: [],
  documents: [],
  history: [],
});

/** pg_export_snapshot()'s ids: hexadecimal numbers joined by dashes (SET takes no parameters). */
const SNAPSHOT_ID = /^[0-9A-F]+(-[0-9A-F]+)+$/i;

/** Reads the source at `url`, in a snapshot of its own or, with `snapshot`, in that shared one. */
export async function openSource(url: string, options: { snapshot?: string } = {}): Promise<Source> {
  const { snapshot } = options;
  if (snapshot !== undefined && !SNAPSHOT_ID.test(snapshot))
    throw new Error(`not a snapshot id: ${snapshot}`);
  const client = new pg.Client({ connectionString: url });
  // A connection lost between queries fails the next one; unheard, its 'error' would end the process.
  client.on('error', () => undefined);
  await client.connect();
  // One snapshot for the whole read, so rows added meanwhile cannot half appear.
  try {
    await client.query(
      `begin isolation level repeatable read read only${snapshot ? `; set transaction snapshot '${snapshot}'` : ''}`,
    );
  } catch (error) {
    await client.end();
    throw error;
  }
  const rows = async <T extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
    (await client.query<T>(text, values)).rows;
  const only = (column: string, ids: string[] | undefined, n = 1) =>
    ids === undefined ? '' : `where ${column} = any($${n}::uuid[])`;
  const idValues = (ids: string[] | undefined) => (ids === undefined ? [] : [ids]);
  let cursors = 0;
  return {
    users: (ids) =>
      rows<SourceUser>(
        `select id, email, encrypted_password, email_confirmed_at, raw_user_meta_data, created_at,
                banned_until, deleted_at, is_anonymous
           from auth.users ${only('id', ids)} order by created_at nulls first, id`,
        idValues(ids),
      ),
    identities: (ids) =>
      rows<SourceIdentity>(
        `select provider_id, user_id, identity_data, provider, last_sign_in_at, created_at
           from auth.identities ${only('user_id', ids)} order by created_at nulls first, id`,
        idValues(ids),
      ),
    profiles: (ids) =>
      rows<SourceProfile>(
        `select id, display_name, avatar_url from public.profiles ${only('id', ids)}`,
        idValues(ids),
      ),
    types: () =>
      rows<SourceType>(
        'select id, name, description, config from public.commitment_types order by created_at, id',
      ),
    commitmentIds: async () =>
      (await rows<{ id: string }>(`select id from public.commitments order by ${COMMITMENT_ORDER}`)).map(
        (row) => row.id,
      ),
    commitments: async (ids) => {
      // One client runs one query at a time.
      const commitments = await rows<SourceCommitment>(
        'select * from public.commitments where id = any($1::uuid[])',
        [ids],
      );
      const byId = new Map(commitments.map((commitment) => [commitment.id, withoutRows(commitment)]));
      for (const { from, columns, order, collect } of CHILD_TABLES)
        for (const row of await rows<ChildRow>(
          `select ${columns} from ${from} where t.commitment_id = any($1::uuid[]) order by ${order}`,
          [ids],
        ))
          collect(byId.get(row.commitment_id), row);
      return ids.flatMap((id) => byId.get(id) ?? []);
    },
    async *everyCommitment(fetchSize = CURSOR_CHUNK) {
      const cursor = `every_commitment_${++cursors}`;
      const children = CHILD_TABLES.map((child, i) => ({
        ...child,
        cursor: `${cursor}_${i}`,
        /** Rows fetched, and the next one not yet taken. */
        ahead: [] as ChildRow[],
        at: 0,
      }));
      try {
        await client.query(
          `declare ${cursor} no scroll cursor for select * from public.commitments order by ${COMMITMENT_ORDER}`,
        );
        // Each child table ordered by its commitment's place first: the rows of a chunk of
        // commitments are the next ones of each cursor.
        for (const { from, columns, order, cursor: name } of children)
          await client.query(
            `declare ${name} no scroll cursor for
             select ${columns} from ${from}
               join (select id, row_number() over (order by ${COMMITMENT_ORDER}) as place from public.commitments) c
                 on c.id = t.commitment_id
              order by c.place, ${order}`,
          );
        for (;;) {
          const chunk = await rows<SourceCommitment>(`fetch forward ${fetchSize} from ${cursor}`);
          if (chunk.length === 0) return;
          const byId = new Map(chunk.map((commitment) => [commitment.id, withoutRows(commitment)]));
          for (const child of children)
            for (;;) {
              if (child.at === child.ahead.length) {
                child.ahead = await rows<ChildRow>(`fetch forward ${fetchSize} from ${child.cursor}`);
                child.at = 0;
              }
              const next = child.ahead[child.at];
              // None left, or the first row of a commitment past this chunk (left for the next).
              if (!next || !byId.has(next.commitment_id)) break;
              child.collect(byId.get(next.commitment_id), next);
              child.at++;
            }
          yield* byId.values();
        }
      } finally {
        for (const name of [cursor, ...children.map((child) => child.cursor)])
          await client.query(`close ${name}`).catch(() => undefined);
      }
    },
    refresh: async (xids = []) => {
      for (let tries = 0; ; tries++) {
        await client.query('rollback');
        await client.query('begin isolation level repeatable read read only');
        const [row] =
          xids.length === 0
            ? await rows<{ now: Date; waiting?: boolean }>('select now() as now')
            : await rows<{ now: Date; waiting: boolean }>(
                `select now() as now, exists (
                   select 1 from pg_snapshot_xip(pg_current_snapshot()) as running (xid)
                    where running.xid::text::bigint % 4294967296 = any($1::bigint[])) as waiting`,
                [xids],
              );
        if (!row?.waiting) return row?.now ?? new Date();
        if (tries >= 1000) throw new Error(`transactions ${xids.join(', ')} never became visible`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    changedSince: async (since) => {
      const changed = async (text: string) =>
        new Map((await rows<{ id: string; at: Date }>(text, [since])).map((row) => [row.id, row.at]));
      return {
        users: await changed(
          `select id, max(at) as at from (
             select id, greatest(created_at, updated_at) as at from auth.users
             union all select user_id, greatest(created_at, updated_at) from auth.identities
             union all select id, updated_at from public.profiles
           ) changes where at >= $1 group by id`,
        ),
        types: await changed(
          'select id, created_at as at from public.commitment_types where created_at >= $1',
        ),
        commitments: await changed(
          `select id, max(at) as at from (
             select id, greatest(created_at, updated_at) as at from public.commitments
             union all select commitment_id, greatest(invited_at, responded_at) from public.commitment_parties
             union all select commitment_id, created_at from public.commitment_documents
             union all select commitment_id, created_at from public.commitment_history
           ) changes where at >= $1 group by id`,
        ),
      };
    },
    share: async () => {
      const [row] = await rows<{ snapshot: string }>('select pg_export_snapshot() as snapshot');
      return { url, snapshot: row?.snapshot as string };
    },
    close: async () => {
      await client.query('rollback').catch(() => undefined);
      await client.end();
    },
  };
}
