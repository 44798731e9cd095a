// GET /v1/me/export: everything Connect holds about the caller, as one JSON download. The account
// part comes from the mutable tables (me/account.ts, bounded to the caller's rows); commitments and
// notifications are read as the caller under row-level security, with the same reads the other
// routes serve, a page at a time; each commitment carries the receipt bundle its receipt route
// serves. The document is written as it is read, so a person with thousands of commitments never
// has them all in memory at once. Other people appear by id and display name only.
import { Readable } from 'node:stream';
import type { Authenticate } from '@connect/auth';
import type { Database } from '@connect/db';
import { HttpProblem, problem } from '@connect/http';
import type { ReceiptDeps } from '@connect/ledger';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import {
  type CommitmentView,
  type DocumentVersionView,
  documentVersionsOf,
  historyOf,
  listCommitments,
} from '../commitments/queries.ts';
import { describeHistory } from '../commitments/routes.ts';
import { readConsistency } from '../consistency.ts';
import { listNotifications, type NotificationCursorKey } from '../notifications/queries.ts';
import { commitmentReceipt } from '../party-ledger-routes.ts';
import type { ProjectedIndex } from '../projected-index.ts';
import { type Caller, readAs } from '../reader.ts';
import { type AccountExport, accountExport } from './account.ts';

export interface ExportRouteDeps extends ReceiptDeps {
  /** Connections as connect_reader (see reader.ts). */
  reader: Kysely<Database>;
  authenticate: Authenticate;
  projectedIndex: ProjectedIndex;
  minIndexWaitMs?: number;
  now?: () => Date;
}

export const EXPORT_FORMAT = 'connect-export/1';
/** Commitments (and notifications) read per statement while the export is written. */
export const EXPORT_PAGE = 100;

const json = (value: unknown) => JSON.stringify(value);

/** The export's bytes, in order: the account, then each commitment, then each notification. */
async function* exportDocument(
  deps: ExportRouteDeps,
  caller: Caller,
  account: AccountExport,
  exportedAt: Date,
): AsyncGenerator<string> {
  const { reader } = deps;
  const { userId } = caller;
  yield `{"format":${json(EXPORT_FORMAT)},"exportedAt":${json(exportedAt.toISOString())},"userId":${json(userId)}`;
  yield `,"ledger":${json({ origin: deps.origin, verifierKey: deps.verifierKey })}`;
  for (const [key, value] of Object.entries(account)) yield `,${json(key)}:${json(value)}`;

  yield ',"commitments":[';
  let after: { createdAt: string; id: string } | undefined;
  let first = true;
  do {
    const page = await readAs(reader, caller, async (db) => {
      const { items, next } = await listCommitments(db, deps.cipher.fields, userId, {
        limit: EXPORT_PAGE,
        after,
      });
      const ids = items.map((item) => item.id);
      const rows = await historyOf(db, deps.cipher.fields, ids);
      const described = await describeHistory(db, rows);
      const versions = await documentVersionsOf(db, deps.cipher.fields, ids);
      return { items, next, rows, described, versions };
    });
    const histories = new Map<string, typeof page.described>();
    page.described.forEach((event, i) => {
      const id = page.rows[i]?.commitmentId;
      if (id === undefined) return;
      const events = histories.get(id);
      if (events) events.push(event);
      else histories.set(id, [event]);
    });
    for (const commitment of page.items) {
      const history = histories.get(commitment.id) ?? [];
      const receipt = await commitmentReceipt(deps, commitment.id);
      yield `${first ? '' : ','}${json({
        commitment,
        history,
        documentVersions: documentVersions(commitment, page.versions),
        receipt,
      })}`;
      first = false;
    }
    after = page.next ?? undefined;
  } while (after);
  yield ']';

  yield ',"notifications":[';
  let cursor: NotificationCursorKey | undefined;
  first = true;
  do {
    const page = await readAs(reader, caller, (db) =>
      listNotifications(db, deps.cipher.fields, userId, { limit: EXPORT_PAGE, after: cursor }),
    );
    for (const notification of page.items) {
      yield `${first ? '' : ','}${json(notification)}`;
      first = false;
    }
    cursor = page.next;
  } while (cursor);
  yield ']}\n';
}

/** The parts, then `done` as soon as the last is written or the writing stops. */
async function* written(parts: AsyncGenerator<string>, done: () => void): AsyncGenerator<string> {
  try {
    yield* parts;
  } finally {
    done();
  }
}

/** Every stored version of the commitment's documents, each with who attached it (by id and name). */
function documentVersions(commitment: CommitmentView, versions: readonly DocumentVersionView[]) {
  const names = new Map(commitment.parties.map((party) => [party.userId, party.displayName]));
  return versions
    .filter((version) => version.commitmentId === commitment.id)
    .map(({ commitmentId: _, ...version }) => ({
      ...version,
      attachedByName: version.attachedBy === null ? null : (names.get(version.attachedBy) ?? null),
    }));
}

function busy(): HttpProblem {
  return new HttpProblem(
    problem(
      429,
      'An export of your data is already being written; wait for it to finish.',
      undefined,
      'rate-limited',
    ),
  );
}

export async function exportRoutes(app: FastifyInstance, deps: ExportRouteDeps): Promise<void> {
  const consistent = readConsistency(deps.projectedIndex, deps.minIndexWaitMs, 'with-notifications');
  const now = deps.now ?? (() => new Date());
  // An export reads everything a person has: one at a time per person in each process.
  const writing = new Map<string, object>();

  app.get('/v1/me/export', async (request, reply) => {
    const claims = await deps.authenticate(request);
    await consistent(request, reply);
    if (writing.has(claims.userId)) {
      reply.header('retry-after', '5');
      throw busy();
    }
    const slot = {};
    writing.set(claims.userId, slot);
    const release = () => {
      if (writing.get(claims.userId) === slot) writing.delete(claims.userId);
    };
    try {
      const account = await accountExport(deps.db, claims, deps.cipher.fields);
      if (!account) throw new HttpProblem(problem(401, 'This account no longer exists.'));
      // Only the caller's own commitments, even for an admin or an auditor: it is their data.
      const caller: Caller = { userId: claims.userId, isAdmin: false };
      const exportedAt = now();
      const body = Readable.from(written(exportDocument(deps, caller, account, exportedAt), release), {
        objectMode: false,
      });
      body.on('error', (error) => logFailure(request.log, error));
      body.on('close', release);
      return reply
        .header(
          'content-disposition',
          `attachment; filename="connect-export-${claims.userId}-${exportedAt.toISOString().slice(0, 10)}.json"`,
        )
        .header('cache-control', 'private, no-store')
        .type('application/json; charset=utf-8')
        .send(body);
    } catch (error) {
      release();
      throw error;
    }
  });
}

function logFailure(log: FastifyBaseLogger, error: unknown): void {
  log.error({ err: error }, 'the export stopped before its end');
}
