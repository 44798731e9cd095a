// connect reconcile: reads a Supabase project and Connect side by side and compares them
// (reconcile.ts). Connect's commitments are replayed from the ledger, so it is the ledger that is
// checked, not a projection of it. Reads only: it writes to neither.
import { loadCommitment } from '@connect/command';
import { type Database, type FieldCipher, openUserEmails } from '@connect/db';
import type { LedgerSource } from '@connect/ledger';
import type { Kysely } from 'kysely';
import {
  type ConnectAccount,
  compareCommitment,
  compareUsers,
  type Findings,
  type ImportRecord,
  type ReconcileReport,
} from './reconcile.ts';
import type { Source } from './source.ts';
import { factsOf } from './storage-export.ts';

export interface ReconcileDeps extends LedgerSource {
  db: Kysely<Database>;
}

export interface ReconcileOptions {
  /** The storage export the import read; without it every document's file is missing. */
  storageDir?: string;
  onProgress?(progress: { phase: 'user' | 'commitment'; done: number; total: number }): void;
  /** Rows read from each side at once. */
  batchSize?: number;
}

const chunks = <T>(list: T[], size: number) =>
  Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

async function accountsOf(
  db: Kysely<Database>,
  fields: FieldCipher,
  ids: string[],
): Promise<Map<string, ConnectAccount>> {
  const accounts = new Map<string, ConnectAccount>();
  if (ids.length === 0) return accounts;
  const users = await db
    .selectFrom('users')
    .select(['id', 'email', 'email_sealed', 'email_verified_at'])
    .where('id', 'in', ids)
    .execute();
  const emails = await openUserEmails(fields, users);
  users.forEach((user, i) => {
    accounts.set(user.id, {
      email: emails[i] ?? '',
      verified: user.email_verified_at !== null,
      identities: [],
    });
  });
  const identities = await db
    .selectFrom('oidc_identities')
    .select(['user_id', 'provider', 'subject'])
    .where('user_id', 'in', ids)
    .execute();
  for (const identity of identities)
    accounts.get(identity.user_id)?.identities.push(`${identity.provider}:${identity.subject}`);
  return accounts;
}

export async function reconcileWithSupabase(
  source: Source,
  deps: ReconcileDeps,
  options: ReconcileOptions = {},
): Promise<ReconcileReport> {
  const startedAt = new Date();
  const { db } = deps;
  const batchSize = options.batchSize ?? 200;
  const imports = new Map<string, ImportRecord>(
    (
      await db.selectFrom('import_progress').select(['kind', 'source_id', 'outcome', 'reasons']).execute()
    ).map((row) => [`${row.kind}:${row.source_id}`, { outcome: row.outcome, reasons: row.reasons }]),
  );
  const importOf = (kind: string) =>
    new Map(
      [...imports]
        .filter(([key]) => key.startsWith(`${kind}:`))
        .map(([key, r]) => [key.slice(kind.length + 1), r]),
    );
  const findings: Findings = { differences: [], skipped: [] };
  const add = (more: Findings) => {
    findings.differences.push(...more.differences);
    findings.skipped.push(...more.skipped);
  };

  const users = await source.users();
  const identities = await source.identities();
  const profiles = await source.profiles();
  const accounts = new Map<string, ConnectAccount>();
  for (const [n, batch] of chunks(users, batchSize).entries()) {
    for (const [id, account] of await accountsOf(
      db,
      deps.cipher.fields,
      batch.map((u) => u.id),
    ))
      accounts.set(id, account);
    options.onProgress?.({
      phase: 'user',
      done: Math.min((n + 1) * batchSize, users.length),
      total: users.length,
    });
  }
  add(compareUsers({ users, identities, profiles }, accounts, importOf('user')));

  const gone = new Set(users.filter((u) => u.deleted_at || u.is_anonymous).map((u) => u.id));
  const commitmentImports = importOf('commitment');
  const ids = await source.commitmentIds();
  let done = 0;
  for await (const rows of source.everyCommitment()) {
    const id = rows.commitment.id;
    const files = await factsOf(options.storageDir, rows.documents);
    const connect = await loadCommitment(db, deps, id);
    add(compareCommitment(rows, files, connect, commitmentImports.get(id), gone));
    if (++done % batchSize === 0 || done === ids.length)
      options.onProgress?.({ phase: 'commitment', done, total: ids.length });
  }
  return {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    counts: {
      users: users.length,
      commitments: ids.length,
      differences: findings.differences.length,
      skipped: findings.skipped.length,
    },
    ...findings,
  };
}
