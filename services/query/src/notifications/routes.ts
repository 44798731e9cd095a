// The in-app channel: a person's notifications, newest first, and marking them read. Reads run as
// the caller under row-level security (only the recipient sees a row); marking read is the
// recipient's one write to this read model, made with the service's pool and bounded to the
// caller's own rows by the statement itself.
import type { Authenticate } from '@connect/auth';
import type { Database } from '@connect/db';
import { badRequest, parseWith } from '@connect/http';
import type { BodyCipher } from '@connect/ledger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { z } from 'zod';
import { readConsistency } from '../consistency.ts';
import type { ProjectedIndex } from '../projected-index.ts';
import { type Caller, callerFromClaims, readAs } from '../reader.ts';
import {
  encodeNotificationCursor,
  listNotificationsWithUnreadCount,
  MAX_MARKED,
  markNotificationsRead,
  NOTIFICATION_ID,
  type NotificationCursorKey,
  readNotificationCursor,
} from './queries.ts';

export interface NotificationRouteDeps {
  /** Connections as connect_reader (see reader.ts). */
  reader: Kysely<Database>;
  /** Its `fields` open the notifications' sealed text. */
  cipher: BodyCipher;
  /** The service's own connections: marking read writes. */
  pool: pg.Pool;
  authenticate: Authenticate;
  projectedIndex: ProjectedIndex;
  minIndexWaitMs?: number;
}

export const notificationsQuery = z
  .object({
    unread: z
      .enum(['true', 'false'])
      .transform((text) => text === 'true')
      .optional()
      .meta({ description: 'true: only the unread ones' }),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(300).optional(),
  })
  .strict();

export const markReadBody = z
  .object({
    ids: z
      .array(z.string().regex(NOTIFICATION_ID, 'must be a notification id'))
      .min(1)
      .max(MAX_MARKED)
      .optional()
      .meta({ description: 'the notifications to mark read' }),
    all: z.literal(true).optional().meta({ description: 'true: mark every notification read' }),
  })
  .strict()
  .refine((body) => (body.ids === undefined) !== (body.all === undefined), {
    path: ['ids'],
    message: 'give either ids or all: true',
  });

function decodeCursor(cursor: string): NotificationCursorKey {
  const key = readNotificationCursor(cursor);
  if (!key) throw badRequest([{ path: 'query.cursor', message: 'is not a cursor this API gave out' }]);
  return key;
}

export async function notificationRoutes(app: FastifyInstance, deps: NotificationRouteDeps): Promise<void> {
  const { reader, authenticate, pool } = deps;
  const consistent = readConsistency(deps.projectedIndex, deps.minIndexWaitMs, 'with-notifications');
  const caller = async (request: FastifyRequest): Promise<Caller> => {
    const claims = await authenticate(request);
    return callerFromClaims(claims);
  };

  app.get('/v1/notifications', async (request: FastifyRequest, reply: FastifyReply) => {
    const who = await caller(request);
    await consistent(request, reply);
    const query = parseWith(notificationsQuery, request.query, 'query');
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    return readAs(reader, who, async (db) => {
      const page = await listNotificationsWithUnreadCount(db, deps.cipher.fields, who.userId, {
        ...query,
        after,
      });
      return {
        items: page.items,
        nextCursor: page.next ? encodeNotificationCursor(page.next) : null,
        unreadCount: page.unreadCount,
      };
    });
  });

  app.post('/v1/notifications/read', async (request, reply) => {
    const who = await caller(request);
    const body = parseWith(markReadBody, request.body);
    // `all: true` after a command marks what that command caused too, once it is there.
    await consistent(request, reply);
    await markNotificationsRead(pool, who.userId, body.ids ?? null);
    return reply.code(204).send();
  });
}
