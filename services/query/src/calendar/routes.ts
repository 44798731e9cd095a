// Calendars: a secret feed URL per user (text/calendar, one event per commitment with a due date
// that the user is a party to) and one commitment's event as an .ics download, for its parties.
// The feed needs no Authorization header; its token names the user, and the commitments are then
// read as that user under row-level security, exactly as the user's own requests would be.
import { createHash } from 'node:crypto';
import type { Authenticate } from '@connect/auth';
import type { Database, FieldCipher } from '@connect/db';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { BodyCipher } from '@connect/ledger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { commitmentsById } from '../commitments/queries.ts';
import { idParam, notVisible } from '../commitments/routes.ts';
import { readConsistency } from '../consistency.ts';
import type { ProjectedIndex } from '../projected-index.ts';
import { type Caller, callerFromClaims, type Reader, readAs } from '../reader.ts';
import { currentFeed, type Feed, feedKey, feedOwner, rotateFeed } from './feeds.ts';
import { type CalendarOptions, calendarOf } from './ics.ts';

export interface CalendarRouteDeps {
  /** The service's own connections: feeds are found here (connect_reader has no grant on them). */
  db: Kysely<Database>;
  /** Connections as connect_reader (see reader.ts). */
  reader: Kysely<Database>;
  /** Opens what the read models keep sealed. */
  cipher: BodyCipher;
  authenticate: Authenticate;
  projectedIndex: ProjectedIndex;
  minIndexWaitMs?: number;
  origin: string;
  /** The server secret feed tokens are derived from (the ledger key's seed). */
  secret: Uint8Array;
  appUrl: string;
  reminderOffsets: readonly number[];
}

/** The most events a feed holds: the latest due dates. */
export const FEED_LIMIT = 2000;

export const feedResponse = z.object({
  url: z.url().meta({ description: 'the secret feed URL: whoever has it can read the feed' }),
  createdAt: z.iso.datetime(),
});

const noFeed = () =>
  new HttpProblem(problem(404, 'No calendar feed has this address; it may have been replaced by a new one.'));

/** Commitments with a due date that the user is a party to, latest due first. */
async function dueCommitments(db: Reader, fields: FieldCipher, userId: string) {
  const rows = await db
    .selectFrom('commitment_parties as p')
    .select('p.commitment_id')
    .where('p.user_id', '=', userId)
    .where('p.due_at', 'is not', null)
    .orderBy('p.due_at', 'desc')
    .orderBy('p.commitment_id')
    .limit(FEED_LIMIT)
    .execute();
  return commitmentsById(
    db,
    fields,
    rows.map((row) => row.commitment_id),
  );
}

/** Sends a calendar with an ETag of its bytes; 304 when the client already has them. */
function sendCalendar(request: FastifyRequest, reply: FastifyReply, body: string, filename: string) {
  const etag = `"${createHash('sha256').update(body).digest('base64url')}"`;
  reply
    .header('etag', etag)
    .header('cache-control', 'private, no-cache')
    .header('content-disposition', `inline; filename="${filename}"`);
  const wanted = request.headers['if-none-match'];
  if (wanted?.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag || tag.trim() === '*')) {
    return reply.code(304).send();
  }
  return reply.type('text/calendar; charset=utf-8').send(body);
}

export async function calendarRoutes(app: FastifyInstance, deps: CalendarRouteDeps): Promise<void> {
  const { reader, authenticate } = deps;
  const key = feedKey(deps.secret);
  const consistent = readConsistency(deps.projectedIndex, deps.minIndexWaitMs);
  const options = (viewer: string, name?: string): CalendarOptions => ({
    origin: deps.origin,
    appUrl: deps.appUrl,
    reminderOffsets: deps.reminderOffsets,
    viewer,
    name,
  });
  const feedUrl = (request: FastifyRequest, feed: Feed) => ({
    url: `${request.protocol}://${request.host}/v1/calendar/${feed.token}.ics`,
    createdAt: feed.createdAt.toISOString(),
  });

  app.get('/v1/me/calendar', async (request) => {
    const { userId } = await authenticate(request);
    return feedUrl(request, await currentFeed(deps.db, key, userId));
  });

  app.post('/v1/me/calendar/rotate', async (request) => {
    const { userId } = await authenticate(request);
    parseWith(z.object({}).strict().optional(), request.body ?? undefined);
    return feedUrl(request, await rotateFeed(deps.db, key, userId));
  });

  app.get('/v1/calendar/:token.ics', async (request, reply) => {
    const { token } = request.params as { token: string };
    const userId = await feedOwner(deps.db, token);
    if (!userId) throw noFeed();
    await consistent(request, reply);
    // Only the user's own commitments, even for an admin: the feed is the user's calendar.
    const caller: Caller = { userId, isAdmin: false };
    const commitments = await readAs(reader, caller, (db) => dueCommitments(db, deps.cipher.fields, userId));
    return sendCalendar(
      request,
      reply,
      calendarOf(commitments, options(userId, 'Connect commitments')),
      'connect.ics',
    );
  });

  app.get('/v1/commitments/:id/calendar.ics', async (request, reply) => {
    const claims = await authenticate(request);
    const { id } = parseWith(idParam, request.params, 'path');
    await consistent(request, reply);
    const caller: Caller = callerFromClaims(claims);
    const [commitment] = await readAs(reader, caller, (db) => commitmentsById(db, deps.cipher.fields, [id]));
    if (!commitment) throw notVisible(id);
    if (commitment.dueAt === null) {
      throw new HttpProblem(
        problem(404, `Commitment ${id} has no due date, so it has no calendar event; set one to get it.`),
      );
    }
    return sendCalendar(request, reply, calendarOf([commitment], options(claims.userId)), `${id}.ics`);
  });
}
