// The REST reads: list, get, history and types. Each runs as the caller under row-level
// security, so a commitment the caller is not party to is simply not there (404).
import type { Authenticate } from '@connect/auth';
import type { Database } from '@connect/db';
import { STATUSES } from '@connect/domain';
import { badRequest, HttpProblem, parseWith, problem } from '@connect/http';
import type { BodyCipher } from '@connect/ledger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { readConsistency } from '../consistency.ts';
import type { ProjectedIndex } from '../projected-index.ts';
import { type Caller, callerFromClaims, type Reader, readAs } from '../reader.ts';
import { type CursorKey, encodeCursor, readCursor } from './cursor.ts';
import { describeEvent, mentionedUsers } from './describe.ts';
import {
  commitmentsById,
  commitmentTypes,
  displayNames,
  type HistoryRow,
  historyOf,
  listCommitments,
} from './queries.ts';

export interface ReadRouteDeps {
  /** Connections as connect_reader (see reader.ts). */
  reader: Kysely<Database>;
  /** Opens what the read models keep sealed. */
  cipher: BodyCipher;
  authenticate: Authenticate;
  projectedIndex: ProjectedIndex;
  minIndexWaitMs?: number;
}

const instant = z.iso.datetime({ offset: true });

export const listQuery = z
  .object({
    status: z
      .string()
      .transform((text) => text.split(','))
      .pipe(z.array(z.enum(STATUSES)))
      .optional(),
    role: z.enum(['creator', 'participant', 'witness']).optional(),
    type: z.string().max(50).optional(),
    dueBefore: instant.optional(),
    dueAfter: instant.optional(),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(200).optional(),
  })
  .strict();

export const idParam = z.object({ id: z.uuid('must be a commitment id (UUID)') });

export function decodeCursor(cursor: string, path = 'query.cursor'): CursorKey {
  const key = readCursor(cursor);
  if (!key) throw badRequest([{ path, message: 'is not a cursor this API gave out' }]);
  return key;
}

/** History rows as GET /v1/commitments/:id/history shows them: actors named, each event summarised. */
export async function describeHistory(db: Reader, rows: readonly HistoryRow[]) {
  const names = await displayNames(db, [...new Set(rows.flatMap(mentionedUsers))]);
  return rows.map((row) => ({
    index: row.index,
    version: row.version,
    type: row.type,
    at: row.at,
    actor: row.actor === null ? null : { userId: row.actor, displayName: names.get(row.actor) ?? null },
    summary: describeEvent(row, names),
    changes: row.redacted ? null : row.changes,
    leafHash: row.leafHash,
    redacted: row.redacted,
  }));
}

export const notVisible = (id: string) =>
  new HttpProblem(problem(404, `No commitment ${id}, or you are not a party to it.`));

export async function readRoutes(app: FastifyInstance, deps: ReadRouteDeps): Promise<void> {
  const { reader, authenticate } = deps;
  const caller = async (request: FastifyRequest): Promise<Caller> => {
    const claims = await authenticate(request);
    return callerFromClaims(claims);
  };
  const consistent = readConsistency(deps.projectedIndex, deps.minIndexWaitMs);
  /** Who asks (401 first), then wait for Connect-Min-Index. */
  const begin = async (request: FastifyRequest, reply: FastifyReply): Promise<Caller> => {
    const who = await caller(request);
    await consistent(request, reply);
    return who;
  };

  app.get('/v1/commitments', async (request, reply) => {
    const who = await begin(request, reply);
    const query = parseWith(listQuery, request.query, 'query');
    const filter = { ...query, after: query.cursor === undefined ? undefined : decodeCursor(query.cursor) };
    return readAs(reader, who, async (db) => {
      const page = await listCommitments(db, deps.cipher.fields, who.userId, filter);
      return { items: page.items, nextCursor: page.next && encodeCursor(page.next) };
    });
  });

  app.get('/v1/commitments/:id', async (request, reply) => {
    const who = await begin(request, reply);
    const { id } = parseWith(idParam, request.params, 'path');
    const [commitment] = await readAs(reader, who, (db) => commitmentsById(db, deps.cipher.fields, [id]));
    if (!commitment) throw notVisible(id);
    const etag = `"${commitment.version}"`;
    reply.header('etag', etag);
    if (request.headers['if-none-match'] === etag) return reply.code(304).send();
    return commitment;
  });

  app.get('/v1/commitments/:id/history', async (request, reply) => {
    const who = await begin(request, reply);
    const { id } = parseWith(idParam, request.params, 'path');
    return readAs(reader, who, async (db) => {
      const rows = await historyOf(db, deps.cipher.fields, [id]);
      if (rows.length === 0) throw notVisible(id);
      return { commitmentId: id, events: await describeHistory(db, rows) };
    });
  });

  app.get('/v1/commitment-types', async (request, reply) => {
    const who = await begin(request, reply);
    return { items: await readAs(reader, who, commitmentTypes) };
  });
}
