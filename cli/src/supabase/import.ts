// connect migrate-from-supabase: users, then types, then commitments, each row once. A row is
// imported in one transaction (an account with its profile and identities; a commitment's whole
// stream in one append) and recorded in import_progress, so a rerun skips what is done and an
// interrupted run goes on where it stopped.

import path from 'node:path';
import { createAccount } from '@connect/command';
import type { JsonObject } from '@connect/crypto';
import type { Database } from '@connect/db';
import {
  COMMITMENT_TYPE_DEFINED,
  COMMITMENT_TYPES_STREAM,
  type CommitmentType,
  CURRENT_SCHEMA,
  commitmentStream,
  commitmentTypeSchema,
} from '@connect/domain';
import { type Ledger, readStream } from '@connect/ledger';
import type { Kysely } from 'kysely';
import { factsOf, storeDocument } from './files.ts';
import { mapCommitment } from './map-commitments.ts';
import { mapType, sameType } from './map-types.ts';
import { mapUsers } from './map-users.ts';
import type { Outcome, RowKind, RowReport } from './report.ts';
import type { Source } from './source.ts';

export interface ImportDeps {
  db: Kysely<Database>;
  ledger: Ledger;
  /** The document store is its documents/ folder. */
  dataDir: string;
  /** The configured OIDC providers (CONNECT_OIDC_<NAME>, lower-cased). */
  providers: string[];
}

export interface ImportOptions {
  /** A folder export of the storage buckets (bucket_id/name); without it every document is missing. */
  storageDir?: string;
  onProgress?(progress: { phase: RowKind; done: number; total: number }): void;
  /** Commitments read from the source at once. */
  batchSize?: number;
}

const key = (kind: RowKind, id: string) => `supabase:${kind}:${id}`;

export async function importFromSupabase(
  source: Source,
  deps: ImportDeps,
  options: ImportOptions = {},
): Promise<RowReport[]> {
  const { db, ledger } = deps;
  const progress = new Map(
    (await db.selectFrom('import_progress').select(['kind', 'source_id', 'outcome']).execute()).map((row) => [
      `${row.kind}:${row.source_id}`,
      row.outcome,
    ]),
  );
  const reports: RowReport[] = [];
  const earlier = (kind: RowKind, id: string) => {
    const outcome = progress.get(`${kind}:${id}`);
    if (outcome === 'imported' || outcome === 'skipped') {
      reports.push({ kind, sourceId: id, outcome, reasons: [], earlier: true });
      return outcome;
    }
    return undefined;
  };
  const record = async (kind: RowKind, sourceId: string, outcome: Outcome, reasons: string[]) => {
    await db
      .insertInto('import_progress')
      .values({ kind, source_id: sourceId, outcome, reasons: JSON.stringify(reasons) })
      .onConflict((oc) =>
        oc.columns(['kind', 'source_id']).doUpdateSet({
          outcome,
          reasons: JSON.stringify(reasons),
          updated_at: new Date(),
        }),
      )
      .execute();
    progress.set(`${kind}:${sourceId}`, outcome);
    reports.push({ kind, sourceId, outcome, reasons });
  };

  // Users.
  const decisions = mapUsers(
    await source.users(),
    await source.identities(),
    await source.profiles(),
    deps.providers,
  );
  const users = new Set<string>();
  for (const [done, decision] of decisions.entries()) {
    options.onProgress?.({ phase: 'user', done, total: decisions.length });
    if (decision.outcome !== 'import') {
      if (!earlier('user', decision.sourceId))
        await record('user', decision.sourceId, decision.outcome, decision.reasons);
      continue;
    }
    const { account } = decision;
    if (earlier('user', account.id) === 'imported') {
      users.add(account.id);
      continue;
    }
    try {
      const created = await db.transaction().execute(async (trx) => {
        const user = await createAccount(trx, ledger, {
          ...account,
          idempotencyKey: key('user', account.id),
        });
        if (!user) return false;
        if (account.bannedUntil)
          await trx
            .updateTable('users')
            .set({ banned_until: account.bannedUntil })
            .where('id', '=', account.id)
            .execute();
        for (const identity of account.identities) {
          await trx
            .insertInto('oidc_identities')
            .values({
              user_id: account.id,
              provider: identity.provider,
              subject: identity.subject,
              email: identity.email,
              email_verified: identity.emailVerified,
            })
            .onConflict((oc) => oc.columns(['provider', 'subject']).doNothing())
            .execute();
        }
        return true;
      });
      if (created) {
        users.add(account.id);
        await record('user', account.id, 'imported', decision.reasons);
      } else
        await record('user', account.id, 'failed', [
          ...decision.reasons,
          'an account here has this email already',
        ]);
    } catch (error) {
      await record('user', account.id, 'failed', [...decision.reasons, (error as Error).message]);
    }
  }

  // Types.
  const defined = new Map<string, CommitmentType>();
  for (const entry of await readStream(db, ledger.origin, COMMITMENT_TYPES_STREAM)) {
    const parsed = commitmentTypeSchema.safeParse(entry.data);
    if (entry.type === COMMITMENT_TYPE_DEFINED && parsed.success) defined.set(parsed.data.key, parsed.data);
  }
  const typeKeys = new Map<string, string>();
  const types = await source.types();
  for (const [done, sourceType] of types.entries()) {
    options.onProgress?.({ phase: 'type', done, total: types.length });
    const decision = mapType(sourceType);
    if (decision.outcome === 'failed') {
      await record('type', decision.sourceId, 'failed', decision.reasons);
      continue;
    }
    typeKeys.set(sourceType.id, decision.type.key);
    if (earlier('type', sourceType.id)) continue;
    const existing = defined.get(decision.type.key);
    if (existing && sameType(existing, decision.type)) {
      await record('type', sourceType.id, 'imported', [
        ...decision.reasons,
        `"${decision.type.key}" is defined here already, the same way`,
      ]);
      continue;
    }
    const result = await ledger.append({
      stream: COMMITMENT_TYPES_STREAM,
      expectedVersion: 'any',
      actor: null,
      idempotencyKey: key('type', sourceType.id),
      events: [
        {
          type: COMMITMENT_TYPE_DEFINED,
          data: decision.type as JsonObject,
          meta: { importedFrom: 'supabase', sourceId: `commitment_types:${sourceType.id}` },
        },
      ],
    });
    if (result.outcome === 'appended' || result.outcome === 'replayed') {
      defined.set(decision.type.key, decision.type);
      await record(
        'type',
        sourceType.id,
        'imported',
        existing
          ? [...decision.reasons, `redefined "${decision.type.key}" as the source has it`]
          : decision.reasons,
      );
    } else await record('type', sourceType.id, 'failed', [...decision.reasons, `append: ${result.outcome}`]);
  }

  // Commitments. Users imported by an earlier run count too.
  for (const [id, outcome] of progress)
    if (id.startsWith('user:') && outcome === 'imported') users.add(id.slice(5));
  const ids = await source.commitmentIds();
  const batchSize = options.batchSize ?? 50;
  const documentsDir = path.join(deps.dataDir, 'documents');
  for (let start = 0; start < ids.length; start += batchSize) {
    const todo = ids.slice(start, start + batchSize).filter((id) => !earlier('commitment', id));
    for (const rows of await source.commitments(todo)) {
      const id = rows.commitment.id;
      try {
        const files = await factsOf(options.storageDir, rows.documents);
        const decision = mapCommitment(rows, { typeKeys, users, files });
        if (decision.outcome === 'failed') {
          await record('commitment', id, 'failed', decision.reasons);
          continue;
        }
        for (const doc of rows.documents) {
          const facts = files.get(doc.id);
          if (facts && options.storageDir)
            await storeDocument(options.storageDir, documentsDir, doc, facts.sha256);
        }
        const result = await ledger.append({
          stream: commitmentStream(id),
          expectedVersion: 'no_stream',
          actor: null,
          idempotencyKey: key('commitment', id),
          events: decision.events.map(({ event, meta }) => ({
            type: event.type,
            schema: CURRENT_SCHEMA[event.type],
            data: event.data as JsonObject,
            meta,
          })),
        });
        if (result.outcome === 'appended' || result.outcome === 'replayed')
          await record('commitment', id, 'imported', decision.reasons);
        else
          await record('commitment', id, 'failed', [
            ...decision.reasons,
            `the ledger has a stream for it already (${result.outcome})`,
          ]);
      } catch (error) {
        await record('commitment', id, 'failed', [(error as Error).message]);
      }
    }
    options.onProgress?.({
      phase: 'commitment',
      done: Math.min(start + batchSize, ids.length),
      total: ids.length,
    });
  }
  return reports;
}
