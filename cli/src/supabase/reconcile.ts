// The verify phase of a dual run: a Supabase project's rows beside what Connect serves, one
// difference per field that disagrees. Pure: the caller reads both sides (reconcile-run.ts).
//
// What counts as drift: every difference, including a row the import failed or never reached
// ("not imported") and a party or document the import left out. Only what the source itself
// marks gone is no drift: a soft-deleted or anonymous user (and such a user as a party) is
// listed as skipped, as long as Connect has no account for them either.
import type { Commitment } from '@connect/domain';
import { type FileFacts, statusOf, textsOf } from './map-commitments.ts';
import { mapUsers, type UserDecision } from './map-users.ts';
import type { SourceCommitmentRows, SourceIdentity, SourceProfile, SourceUser } from './source.ts';

export interface Difference {
  kind: 'user' | 'commitment';
  id: string;
  /** The field, e.g. "title", "party <id> response", "document "a.pdf" version 2", "not imported". */
  what: string;
  /** As each side shows it; null where that side has none. */
  source: string | null;
  connect: string | null;
  /** What the import recorded for a row Connect lacks. */
  note?: string;
}

export interface Skipped {
  kind: 'user' | 'commitment';
  id: string;
  reason: string;
}

export interface Findings {
  differences: Difference[];
  skipped: Skipped[];
}

/** An account as Connect holds it. */
export interface ConnectAccount {
  email: string;
  verified: boolean;
  /** provider:subject */
  identities: string[];
}

/** What import_progress says of a row. */
export interface ImportRecord {
  outcome: string;
  reasons: string[];
}

const importNote = (record: ImportRecord | undefined) =>
  record
    ? `the import: ${record.outcome}${record.reasons.length > 0 ? ` (${record.reasons.join('; ')})` : ''}`
    : 'the import never reached it';

function compared(
  kind: Difference['kind'],
  id: string,
  pairs: [string, string | null, string | null][],
): Difference[] {
  return pairs
    .filter(([, source, connect]) => source !== connect)
    .map(([what, source, connect]) => ({ kind, id, what, source, connect }));
}

/** Two lists of keys as differences: one for each key on only one side. */
function sets(kind: Difference['kind'], id: string, what: string, source: string[], connect: string[]) {
  return compared(kind, id, [
    ...source.filter((key) => !connect.includes(key)).map((key): [string, string, null] => [what, key, null]),
    ...connect.filter((key) => !source.includes(key)).map((key): [string, null, string] => [what, null, key]),
  ]);
}

/**
 * Every source user beside Connect's account of the same id: email, verified, linked identities.
 * The source's identities are compared at every provider, configured here or not: an identity
 * Connect did not link is one its user cannot sign in with.
 */
export function compareUsers(
  source: { users: SourceUser[]; identities: SourceIdentity[]; profiles: SourceProfile[] },
  connect: ReadonlyMap<string, ConnectAccount>,
  imports: ReadonlyMap<string, ImportRecord>,
): Findings {
  const providers = [...new Set(source.identities.map((i) => i.provider.toLowerCase()))];
  const decisions: UserDecision[] = mapUsers(source.users, source.identities, source.profiles, providers);
  const findings: Findings = { differences: [], skipped: [] };
  for (const [i, decision] of decisions.entries()) {
    const user = source.users[i] as SourceUser;
    const account = connect.get(user.id);
    if (decision.outcome !== 'import') {
      const said = `${decision.outcome}: ${decision.reasons.join('; ')}`;
      if (account)
        findings.differences.push({
          kind: 'user',
          id: user.id,
          what: 'account',
          source: said,
          connect: account.email,
        });
      else if (decision.outcome === 'skipped')
        findings.skipped.push({
          kind: 'user',
          id: user.id,
          reason: `${decision.reasons.join('; ')} in the source`,
        });
      else
        findings.differences.push({
          kind: 'user',
          id: user.id,
          what: 'not imported',
          source: user.email,
          connect: null,
          note: importNote(imports.get(user.id)),
        });
      continue;
    }
    const expected = decision.account;
    if (!account) {
      findings.differences.push({
        kind: 'user',
        id: user.id,
        what: 'not imported',
        source: expected.email,
        connect: null,
        note: importNote(imports.get(user.id)),
      });
      continue;
    }
    findings.differences.push(
      ...compared('user', user.id, [
        ['email', expected.email, account.email],
        ['verified', String(expected.emailVerifiedAt !== null), String(account.verified)],
      ]),
      ...sets(
        'user',
        user.id,
        'identity',
        expected.identities.map((i) => `${i.provider}:${i.subject}`),
        account.identities,
      ),
    );
  }
  return findings;
}

const partyText = (p: { role: string; response: string }) => `${p.role}, ${p.response}`;

/**
 * A source commitment beside the state Connect's ledger replays it to (`connect.exists` false:
 * Connect has no stream for it). `files` are the storage export's facts by commitment_documents
 * id; `gone` the users the source marks deleted or anonymous.
 */
export function compareCommitment(
  rows: SourceCommitmentRows,
  files: ReadonlyMap<string, FileFacts>,
  connect: Commitment,
  imported: ImportRecord | undefined,
  gone: ReadonlySet<string>,
): Findings {
  const { commitment: c } = rows;
  const id = c.id;
  if (!connect.exists)
    return {
      differences: [
        {
          kind: 'commitment',
          id,
          what: 'not imported',
          source: `${c.title} (${c.status})`,
          connect: null,
          note: importNote(imported),
        },
      ],
      skipped: [],
    };
  const texts = textsOf(c);
  const amount =
    c.amount_cents === null && c.currency === null
      ? null
      : `${c.amount_cents ?? '?'} ${c.currency?.trim() ?? '?'}`;
  const differences = compared('commitment', id, [
    ['status', statusOf(c.status) ?? c.status, connect.status],
    ['title', texts.title, connect.title],
    ['description', texts.description, connect.description],
    ['terms', texts.terms, connect.terms],
    ['amount', amount, connect.amount && `${connect.amount.minor} ${connect.amount.currency}`],
    ['due date', c.due_date?.toISOString() ?? null, connect.dueAt],
  ]);
  const skipped: Skipped[] = [];

  const sourceParties = new Map([[c.creator_id, { role: 'creator', response: 'accepted' }]]);
  for (const party of rows.parties)
    if (party.user_id !== c.creator_id)
      sourceParties.set(party.user_id, { role: party.role, response: party.status });
  const connectParties = new Map(connect.parties.map((p) => [p.userId, p]));
  for (const userId of new Set([...sourceParties.keys(), ...connectParties.keys()])) {
    const s = sourceParties.get(userId);
    const k = connectParties.get(userId);
    if (s && !k && gone.has(userId)) {
      skipped.push({
        kind: 'commitment',
        id,
        reason: `party ${userId} is a deleted or anonymous user in the source`,
      });
      continue;
    }
    differences.push(
      ...(s && k
        ? compared('commitment', id, [
            [`party ${userId} role`, s.role, k.role],
            [`party ${userId} response`, s.response, k.response],
          ])
        : compared('commitment', id, [
            [`party ${userId}`, s ? partyText(s) : null, k ? partyText(k) : null],
          ])),
    );
  }

  const key = (name: string, version: number) => `document "${name}" version ${version}`;
  const sourceDocuments = new Map(
    rows.documents.map((doc) => [
      key(doc.name, doc.version),
      files.get(doc.id)?.sha256 ?? `no file documents/${doc.storage_path} in the storage export`,
    ]),
  );
  const connectDocuments = new Map(connect.documents.map((doc) => [key(doc.name, doc.version), doc.sha256]));
  for (const what of new Set([...sourceDocuments.keys(), ...connectDocuments.keys()]))
    differences.push(
      ...compared('commitment', id, [
        [what, sourceDocuments.get(what) ?? null, connectDocuments.get(what) ?? null],
      ]),
    );
  return { differences, skipped };
}

export interface ReconcileReport {
  startedAt: string;
  finishedAt: string;
  counts: { users: number; commitments: number; differences: number; skipped: number };
  differences: Difference[];
  skipped: Skipped[];
}

const shown = (value: string | null) => (value === null ? '(none)' : JSON.stringify(value));

/** One line: what, which row, the source's value, Connect's. */
export const formatDifference = (d: Difference) =>
  `${d.what} of ${d.kind} ${d.id}: source ${shown(d.source)}, Connect ${shown(d.connect)}${d.note ? ` (${d.note})` : ''}`;

export function formatReconcile(report: ReconcileReport): string {
  const { counts } = report;
  return [
    ...report.differences.map(formatDifference),
    ...report.skipped.map((s) => `skipped ${s.kind} ${s.id}: ${s.reason} (not drift)`),
    `${counts.users} users and ${counts.commitments} commitments compared: ${counts.differences} differences, ${counts.skipped} skipped`,
  ].join('\n');
}
