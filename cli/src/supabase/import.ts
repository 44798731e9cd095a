// connect migrate-from-supabase: users, then types, then commitments. A row is imported in one
// transaction (an account with its profile and identities; a commitment's events in one append)
// and recorded in import_progress, so a rerun skips what is done and an interrupted run goes on
// where it stopped. The same steps serve the dual run (follow.ts), which also brings rows imported
// before up to date with the source.
import path from 'node:path';
import { createAccounts } from '@connect/command';
import type { JsonObject } from '@connect/crypto';
import {
  type Database,
  type FieldCipher,
  type KeyRing,
  oidcIdentityEmailPlace,
  userEmails,
  userSubject,
} from '@connect/db';
import {
  COMMITMENT_TYPE_DEFINED,
  COMMITMENT_TYPES_STREAM,
  type CommitmentType,
  CURRENT_SCHEMA,
  commitmentStream,
  commitmentTypeSchema,
  initialState,
  replayRecorded,
} from '@connect/domain';
import { type Entry, type Ledger, readStream } from '@connect/ledger';
import { type Kysely, sql } from 'kysely';
import { historySourceId, mapChanges, mapCommitment, type PlannedEvent } from './map-commitments.ts';
import { mapType, sameType } from './map-types.ts';
import { type AccountPlan, mapUsers } from './map-users.ts';
import { type CommitmentInput, inputId, type Mapper, spawnMapper } from './mapper.ts';
import type { Outcome, RowKind, RowReport } from './report.ts';
import type { SharedSnapshot, Source, SourceHistory, SourceType } from './source.ts';
import { factsOf } from './storage-export.ts';
import { storeDocument } from './store-document.ts';

export interface ImportDeps {
  db: Kysely<Database>;
  ledger: Ledger;
  /** The document store is its documents/ folder. */
  dataDir: string;
  /** The data keys documents are sealed with. */
  keys: KeyRing;
  /** Whether documents are stored sealed (CONNECT_ENCRYPTION); true when absent. */
  encryption?: boolean;
  /** The configured OIDC providers (CONNECT_OIDC_<NAME>, lower-cased). */
  providers: string[];
}

export interface ImportOptions {
  /** A folder export of the storage buckets (bucket_id/name); without it every document is missing. */
  storageDir?: string;
  onProgress?(progress: { phase: RowKind; done: number; total: number }): void;
  /** Rows read from the source, and written here, at once. */
  batchSize?: number;
  /**
   * Transactions creating accounts at once (default 4), each of up to USER_GROUP accounts. Each
   * holds a connection of `db` while the profiles are appended, so with a ledger on the same pool
   * this must stay well below its size.
   */
  userConcurrency?: number;
}

const key = (kind: RowKind, id: string) => `supabase:${kind}:${id}`;

/** New accounts created in one transaction. */
const USER_GROUP = 50;

type NewUser = { account: AccountPlan; reasons: string[] };

async function forEachConcurrently<T>(items: T[], limit: number, each: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await each(items[next++] as T);
    }),
  );
}

/** What one pass did to a commitment: its events appended (0 when nothing changed). */
export type Applied = { id: string; events: number };

export interface Importer {
  /** Rows this importer has dealt with, in order. */
  reports: RowReport[];
  /** Imported before (by an earlier run or this one) or skipped for good. */
  done(kind: RowKind, id: string): boolean;
  /** done(), and then reported as left alone (`earlier`). */
  earlier(kind: RowKind, id: string): boolean;
  /** Imports the source's users of `ids` (all when undefined); those imported before are kept in step. */
  users(source: Source, ids?: string[]): Promise<void>;
  /** Imports the types not imported before; `again`: those too, redefining any the source changed. */
  types(types: SourceType[], again?: boolean): Promise<void>;
  /** What mapping a commitment names: the types and users imported. */
  context(): { typeKeys: ReadonlyMap<string, string>; users: ReadonlySet<string> };
  /** Which of these commitments have a stream in the ledger. */
  streamsPresent(ids: string[]): Promise<Set<string>>;
  /**
   * Imports each commitment new here, and brings each imported before to the source's state. One
   * mapped already is taken as new (its append fails when the stream exists).
   */
  commitments(batch: CommitmentInput[]): Promise<Applied[]>;
}

export async function createImporter(deps: ImportDeps, options: ImportOptions = {}): Promise<Importer> {
  const { db, ledger } = deps;
  const emails = userEmails(deps.keys, ledger.cipher.fields);
  const progress = new Map(
    (await db.selectFrom('import_progress').select(['kind', 'source_id', 'outcome']).execute()).map((row) => [
      `${row.kind}:${row.source_id}`,
      row.outcome,
    ]),
  );
  const reports: RowReport[] = [];
  const writeProgress = async (executor: Kysely<Database>, rows: RowReport[]) => {
    await executor
      .insertInto('import_progress')
      .values(
        rows.map((r) => ({
          kind: r.kind,
          source_id: r.sourceId,
          outcome: r.outcome,
          reasons: JSON.stringify(r.reasons),
        })),
      )
      .onConflict((oc) =>
        oc.columns(['kind', 'source_id']).doUpdateSet((eb) => ({
          outcome: eb.ref('excluded.outcome'),
          reasons: eb.ref('excluded.reasons'),
          updated_at: new Date(),
        })),
      )
      .execute();
  };
  const remember = (rows: RowReport[]) => {
    for (const r of rows) {
      progress.set(`${r.kind}:${r.sourceId}`, r.outcome);
      reports.push(r);
    }
  };
  const record = async (rows: RowReport[]) => {
    if (rows.length === 0) return;
    await writeProgress(db, rows);
    remember(rows);
  };
  const report = (kind: RowKind, sourceId: string, outcome: Outcome, reasons: string[]) =>
    record([{ kind, sourceId, outcome, reasons }]);
  const imported = (kind: RowKind, id: string) => progress.get(`${kind}:${id}`) === 'imported';
  const done = (kind: RowKind, id: string) => {
    const outcome = progress.get(`${kind}:${id}`);
    return outcome === 'imported' || outcome === 'skipped';
  };
  /** Reports a row imported or skipped for good by an earlier run as such. */
  const earlier = (kind: RowKind, id: string) => {
    const outcome = progress.get(`${kind}:${id}`);
    if (!done(kind, id) || !outcome) return false;
    reports.push({ kind, sourceId: id, outcome: outcome as Outcome, reasons: [], earlier: true });
    return true;
  };

  // The users a commitment may name: those imported, by any run.
  const users = new Set<string>();
  for (const [id, outcome] of progress)
    if (id.startsWith('user:') && outcome === 'imported') users.add(id.slice(5));

  const defined = new Map<string, CommitmentType>();
  for (const entry of await readStream(db, ledger, COMMITMENT_TYPES_STREAM)) {
    const parsed = commitmentTypeSchema.safeParse(entry.data);
    if (entry.type === COMMITMENT_TYPE_DEFINED && parsed.success) defined.set(parsed.data.key, parsed.data);
  }
  const typeKeys = new Map<string, string>();

  /**
   * New accounts in one transaction, with their progress rows: a rerun never meets an account it
   * made without knowing it did (it would take it for someone else's with the same email). When
   * the transaction fails, each account is tried alone, so only the culprit fails.
   */
  async function createUsers(plans: readonly NewUser[]): Promise<void> {
    let created: RowReport[];
    try {
      created = await db.transaction().execute(async (trx) => {
        const users = await createAccounts(
          trx,
          ledger,
          emails,
          plans.map(({ account }) => ({ ...account, idempotencyKey: key('user', account.id) })),
        );
        const made = plans.filter((_, i) => users[i] !== undefined);
        for (const { account } of made) {
          if (account.bannedUntil)
            await trx
              .updateTable('users')
              .set({ banned_until: account.bannedUntil })
              .where('id', '=', account.id)
              .execute();
          await linkIdentities(trx, emails.fields, account);
        }
        const rows = made.map(
          ({ account, reasons }): RowReport => ({
            kind: 'user',
            sourceId: account.id,
            outcome: 'imported',
            reasons,
          }),
        );
        if (rows.length > 0) await writeProgress(trx, rows);
        return rows;
      });
    } catch (error) {
      const [only] = plans;
      if (plans.length === 1 && only)
        await report('user', only.account.id, 'failed', [...only.reasons, (error as Error).message]);
      else for (const plan of plans) await createUsers([plan]);
      return;
    }
    // Committed: what follows must not send these accounts round again (they would meet themselves).
    for (const row of created) users.add(row.sourceId);
    remember(created);
    const made = new Set(created.map((row) => row.sourceId));
    await record(
      plans
        .filter(({ account }) => !made.has(account.id))
        .map(({ account, reasons }) => ({
          kind: 'user',
          sourceId: account.id,
          outcome: 'failed',
          reasons: [...reasons, 'an account here has this email already'],
        })),
    );
  }

  /** An account imported before: its ban, verification and identities as the source now has them. */
  async function updateUser(account: AccountPlan) {
    await db.transaction().execute(async (trx) => {
      await trx
        .updateTable('users')
        .set({ banned_until: account.bannedUntil })
        .where('id', '=', account.id)
        .execute();
      if (account.emailVerifiedAt)
        await trx
          .updateTable('users')
          .set({ email_verified_at: account.emailVerifiedAt })
          .where('id', '=', account.id)
          .where('email_verified_at', 'is', null)
          .execute();
      await linkIdentities(trx, emails.fields, account);
    });
  }

  /** One commitment's append (or why none): its report is the caller's to record. */
  async function importCommitment(
    input: CommitmentInput,
    streamExists: boolean,
  ): Promise<Applied & { report?: RowReport }> {
    const id = inputId(input);
    const outcome = (outcome: Outcome, reasons: string[], events = 0) => ({
      id,
      events,
      report: { kind: 'commitment' as const, sourceId: id, outcome, reasons },
    });
    const mapped = 'decision' in input;
    const files = mapped ? input.files : await factsOf(options.storageDir, input.documents);
    const entries = streamExists && !mapped ? await readStream(db, ledger, commitmentStream(id)) : [];
    let events: PlannedEvent[];
    let reasons: string[];
    if (mapped || entries.length === 0) {
      const decision = mapped ? input.decision : mapCommitment(input, { typeKeys, users, files });
      if (decision.outcome === 'failed') return outcome('failed', decision.reasons);
      ({ events, reasons } = decision);
    } else {
      const current = replayRecorded(initialState(id), entries);
      const decision = mapChanges(input, { typeKeys, users, files }, current, appliedHistory(entries));
      if (decision.outcome === 'failed') return outcome('failed', ['the dual run:', ...decision.reasons]);
      if (decision.outcome === 'unchanged')
        return imported('commitment', id) ? { id, events: 0 } : outcome('imported', decision.reasons);
      ({ events, reasons } = decision);
    }
    if (options.storageDir) {
      const documentsDir = path.join(deps.dataDir, 'documents');
      for (const doc of input.documents) {
        const facts = files.get(doc.id);
        if (facts)
          await storeDocument(options.storageDir, documentsDir, doc, facts.sha256, {
            keys: deps.keys,
            seal: deps.encryption ?? true,
          });
      }
    }
    const result = await ledger.append({
      stream: commitmentStream(id),
      expectedVersion: entries.length === 0 ? 'no_stream' : entries.length,
      actor: null,
      idempotencyKey:
        entries.length === 0 ? key('commitment', id) : `${key('commitment', id)}@${entries.length}`,
      events: events.map(({ event, meta }) => ({
        type: event.type,
        schema: CURRENT_SCHEMA[event.type],
        data: event.data as JsonObject,
        meta,
      })),
    });
    if (result.outcome === 'appended' || result.outcome === 'replayed')
      return outcome('imported', reasons, result.outcome === 'appended' ? events.length : 0);
    return outcome('failed', [
      ...reasons,
      entries.length === 0
        ? `the ledger has a stream for it already (${result.outcome})`
        : `written meanwhile (${result.outcome}); the next pass tries again`,
    ]);
  }

  /** Which of these commitments have a stream in the ledger. */
  async function streamsPresent(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    // One index probe per stream, as a subquery run per row: the planner's statistics lag far
    // behind a ledger that grows by the import, and it would choose to scan the whole table.
    const { rows } = await sql<{ stream: string }>`
      select s.stream from unnest(${ids.map((id) => commitmentStream(id))}::text[]) as s (stream)
       where (select true from ledger_entries e where e.stream = s.stream limit 1)`.execute(db);
    const streams = new Set(rows.map((row) => row.stream));
    return new Set(ids.filter((id) => streams.has(commitmentStream(id))));
  }

  return {
    reports,
    done,
    earlier,

    async users(source, ids) {
      const decisions = mapUsers(
        await source.users(ids),
        await source.identities(ids),
        await source.profiles(ids),
        deps.providers,
      );
      let finished = 0;
      const progressed = (rows: number) => {
        finished += rows;
        options.onProgress?.({ phase: 'user', done: finished, total: decisions.length });
      };
      const fresh: NewUser[] = [];
      await forEachConcurrently(decisions, options.userConcurrency ?? 4, async (decision) => {
        const sourceId = decision.outcome === 'import' ? decision.account.id : decision.sourceId;
        if (ids === undefined && earlier('user', sourceId)) return progressed(1);
        if (decision.outcome !== 'import') await report('user', sourceId, decision.outcome, decision.reasons);
        else if (imported('user', sourceId)) await updateUser(decision.account);
        else return void fresh.push(decision);
        progressed(1);
      });
      // New accounts a group at a time, several groups at once: their appends share group commits.
      const groups = Array.from({ length: Math.ceil(fresh.length / USER_GROUP) }, (_, i) =>
        fresh.slice(i * USER_GROUP, (i + 1) * USER_GROUP),
      );
      await forEachConcurrently(groups, options.userConcurrency ?? 4, async (group) => {
        await createUsers(group);
        progressed(group.length);
      });
    },

    async types(types, again = false) {
      for (const [done, sourceType] of types.entries()) {
        options.onProgress?.({ phase: 'type', done, total: types.length });
        const decision = mapType(sourceType);
        if (decision.outcome === 'failed') {
          await report('type', decision.sourceId, 'failed', decision.reasons);
          continue;
        }
        typeKeys.set(sourceType.id, decision.type.key);
        if (again ? false : earlier('type', sourceType.id)) continue;
        const existing = defined.get(decision.type.key);
        if (existing && sameType(existing, decision.type)) {
          await report('type', sourceType.id, 'imported', [
            ...decision.reasons,
            `"${decision.type.key}" is defined here already, the same way`,
          ]);
          continue;
        }
        const result = await ledger.append({
          stream: COMMITMENT_TYPES_STREAM,
          expectedVersion: 'any',
          actor: null,
          events: [
            {
              type: COMMITMENT_TYPE_DEFINED,
              data: decision.type as JsonObject,
              meta: { importedFrom: 'supabase', sourceId: `commitment_types:${sourceType.id}` },
            },
          ],
        });
        if (result.outcome === 'appended') {
          defined.set(decision.type.key, decision.type);
          await report(
            'type',
            sourceType.id,
            'imported',
            existing
              ? [...decision.reasons, `redefined "${decision.type.key}" as the source has it`]
              : decision.reasons,
          );
        } else
          await report('type', sourceType.id, 'failed', [...decision.reasons, `append: ${result.outcome}`]);
      }
    },

    context: () => ({ typeKeys, users }),
    streamsPresent,

    async commitments(batch) {
      if (batch.length === 0) return [];
      // Those mapped already are new streams; the others are looked up.
      const existing = await streamsPresent(
        batch.flatMap((input) => ('decision' in input ? [] : [input.commitment.id])),
      );
      // Concurrent appends share the ledger's group commit, so a batch costs about one commit.
      const applied = await Promise.all(
        batch.map((input) =>
          importCommitment(input, existing.has(inputId(input))).catch((error: Error) => ({
            id: inputId(input),
            events: 0,
            report: {
              kind: 'commitment' as const,
              sourceId: inputId(input),
              outcome: 'failed' as const,
              reasons: [error.message],
            },
          })),
        ),
      );
      await record(applied.flatMap((a) => (a.report ? [a.report] : [])));
      return applied.map(({ id, events }) => ({ id, events }));
    },
  };
}

async function linkIdentities(db: Kysely<Database>, fields: FieldCipher, account: AccountPlan) {
  for (const identity of account.identities) {
    const [sealed] =
      identity.email === null
        ? [null]
        : await fields.seal([
            {
              subject: userSubject(account.id),
              place: oidcIdentityEmailPlace(identity.provider, identity.subject),
              value: identity.email,
            },
          ]);
    await db
      .insertInto('oidc_identities')
      .values({
        user_id: account.id,
        provider: identity.provider,
        subject: identity.subject,
        email_sealed: sealed ?? null,
        email_verified: identity.emailVerified,
      })
      .onConflict((oc) => oc.columns(['provider', 'subject']).doNothing())
      .execute();
  }
}

/**
 * Which history rows a stream already holds: those its events name (meta.sourceId), and those the
 * state of a CommitmentImported includes (meta.historyThrough; by time for imports that predate it).
 */
export function appliedHistory(entries: Entry[]): (row: SourceHistory) => boolean {
  const named = new Set(entries.map((e) => e.meta.sourceId).filter((id) => typeof id === 'string'));
  const imported = entries.findLast((e) => e.type === 'CommitmentImported');
  const through = imported?.meta.historyThrough;
  return (row) =>
    named.has(historySourceId(row)) ||
    (typeof through === 'string'
      ? BigInt(row.id) <= BigInt(through)
      : imported !== undefined && row.created_at.toISOString() <= imported.recordedAt);
}

/** Batches of commitments imported at once. */
const BATCHES_IN_FLIGHT = 2;

/** The whole first pass: every user, type and commitment the source holds. */
export async function importFromSupabase(
  source: Source,
  deps: ImportDeps,
  options: ImportOptions = {},
): Promise<RowReport[]> {
  return importAll(await createImporter(deps, options), source, options);
}

/** Every row of the source through `importer`, leaving alone those done before. */
export async function importAll(importer: Importer, source: Source, options: ImportOptions = {}) {
  const ids = await source.commitmentIds();
  // Begun at once, when there is work for it: the thread loads while users and types are imported.
  const mapper = ids.some((id) => !importer.done('commitment', id)) ? spawnMapper() : undefined;
  try {
    await importer.users(source);
    await importer.types(await source.types());
    if (mapper) await importCommitments(importer, mapper, ids, await source.share(), options);
    else {
      for (const id of ids) importer.earlier('commitment', id);
      options.onProgress?.({ phase: 'commitment', done: ids.length, total: ids.length });
    }
  } finally {
    await mapper?.close();
  }
  return [...importer.reports];
}

async function importCommitments(
  importer: Importer,
  mapper: Mapper,
  ids: string[],
  snapshot: SharedSnapshot,
  options: ImportOptions,
) {
  mapper.begin({ snapshot, storageDir: options.storageDir, ...importer.context() });
  const batchSize = options.batchSize ?? 200;
  // The next batch is read and mapped while this one is written.
  const read = async (start: number) => {
    const batch = ids.slice(start, start + batchSize).filter((id) => !importer.earlier('commitment', id));
    return batch.length === 0 ? [] : mapper.map(batch, await importer.streamsPresent(batch));
  };
  // Two batches are imported at once: the ledger commits one while the next is decided, and its
  // appends wait in the ledger's queue for the following group commit.
  const inFlight: Promise<unknown>[] = [];
  let done = 0;
  const imported = (rows: number) => () => {
    done += rows;
    options.onProgress?.({ phase: 'commitment', done, total: ids.length });
  };
  let next = read(0);
  try {
    for (let start = 0; start < ids.length; start += batchSize) {
      const rows = await next;
      if (start + batchSize < ids.length) next = read(start + batchSize);
      inFlight.push(importer.commitments(rows).then(imported(Math.min(batchSize, ids.length - start))));
      if (inFlight.length >= BATCHES_IN_FLIGHT) await inFlight.shift();
    }
    await Promise.all(inFlight);
  } catch (error) {
    await Promise.allSettled([...inFlight, next]);
    throw error;
  }
}
