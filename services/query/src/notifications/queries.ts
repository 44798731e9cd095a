// The in-app notification reads and the one write, shared by REST (routes.ts) and GraphQL. Reads
// take the caller's reader (readAs: row-level security shows a person only their own rows) and
// filter by recipient as well; marking read takes the service's pool and is bounded to the
// caller's rows by the statement itself.
import { compiledPerShape, type FieldCipher, openNotificationTexts } from '@connect/db';
import { sql } from 'kysely';
import type pg from 'pg';
import { z } from 'zod';
import type { Reader } from '../reader.ts';

export interface NotificationView {
  id: string;
  kind: string;
  title: string;
  body: string;
  link: string;
  commitmentId: string;
  ledgerIndex: number;
  createdAt: string;
  readAt: string | null;
}

/** Where a page of notifications (newest first) stops. */
export interface NotificationCursorKey {
  createdAt: string;
  ledgerIndex: number;
  id: string;
}

/** ledgerIndex:recipient:kind (no NUL: PostgreSQL's text cannot hold one) */
export const NOTIFICATION_ID = /^\d{1,19}:[^:\s\0]{1,200}:[a-z]{1,20}$/;
/** Most ids one request marks read. */
export const MAX_MARKED = 500;

// As encodeNotificationCursor writes it: the time as toISOString gives it. It is bound as a Date,
// which pg sends in a form PostgreSQL takes for any year (it has no year 0000; pg sends 1 BC).
const cursorShape = z.tuple([
  z.iso.datetime({ precision: 3 }),
  z.number().int().min(0),
  z.string().regex(NOTIFICATION_ID),
]);

export const encodeNotificationCursor = (key: NotificationCursorKey): string =>
  Buffer.from(JSON.stringify([key.createdAt, key.ledgerIndex, key.id])).toString('base64url');

/** The key of a cursor this API gave out; undefined for anything else. */
export function readNotificationCursor(cursor: string): NotificationCursorKey | undefined {
  try {
    const [createdAt, ledgerIndex, id] = cursorShape.parse(
      JSON.parse(Buffer.from(cursor, 'base64url').toString()),
    );
    return { createdAt, ledgerIndex, id };
  } catch {
    return undefined;
  }
}

const COLUMNS = [
  'id',
  'recipient_id',
  'kind',
  'sealed',
  'link',
  'commitment_id',
  'ledger_index',
  'created_at',
  'read_at',
] as const;

interface NotificationRow {
  id: string;
  recipient_id: string;
  kind: string;
  sealed: Uint8Array;
  link: string;
  commitment_id: string;
  ledger_index: number | string | bigint;
  created_at: Date;
  read_at: Date | null;
}

/** The rows as the API shows them, their text opened (a row whose recipient is erased is left out). */
async function views(fields: FieldCipher, rows: readonly NotificationRow[]): Promise<NotificationView[]> {
  const texts = await openNotificationTexts(
    fields,
    rows.map((row) => ({ id: row.id, recipientId: row.recipient_id, sealed: row.sealed })),
  );
  return rows.flatMap((row, i) => {
    const text = texts[i];
    if (!text) return [];
    return [
      {
        id: row.id,
        kind: row.kind,
        title: text.title,
        body: text.body,
        link: row.link,
        commitmentId: row.commitment_id,
        ledgerIndex: Number(row.ledger_index),
        createdAt: row.created_at.toISOString(),
        readAt: row.read_at?.toISOString() ?? null,
      },
    ];
  });
}

const cursorKeyOf = (row: NotificationRow): NotificationCursorKey => ({
  createdAt: row.created_at.toISOString(),
  ledgerIndex: Number(row.ledger_index),
  id: row.id,
});

const pageRows = compiledPerShape(
  (
    db: Reader,
    shape: { unread: boolean; after: boolean; count: boolean },
    v: {
      userId: string;
      afterCreatedAt: Date | undefined;
      afterIndex: number | undefined;
      afterId: string | undefined;
      limit: number;
    },
  ) => {
    let query = db
      .selectFrom('notifications')
      .select(COLUMNS)
      // With the count, each row carries the caller's unread count (one subquery, run once).
      .$if(shape.count, (q) => q.select(unreadCountOf(db, v.userId).as('unread_count')))
      .where('recipient_id', '=', v.userId);
    if (shape.unread) query = query.where('read_at', 'is', null);
    if (shape.after) {
      query = query.where(
        sql<boolean>`(created_at, ledger_index, id) < (${v.afterCreatedAt}::timestamptz, ${v.afterIndex}::bigint, ${v.afterId}::text)`,
      );
    }
    return query
      .orderBy('created_at', 'desc')
      .orderBy('ledger_index', 'desc')
      .orderBy('id', 'desc')
      .limit(v.limit);
  },
);

export interface NotificationPage {
  items: NotificationView[];
  /** Set when there are more. */
  next: NotificationCursorKey | undefined;
}

/** A page of the caller's notifications, newest first. */
export async function listNotifications(
  db: Reader,
  fields: FieldCipher,
  userId: string,
  filter: { unread?: boolean; limit: number; after?: NotificationCursorKey },
): Promise<NotificationPage> {
  const { page } = await readPage(db, fields, userId, filter, false);
  return page;
}

/**
 * A page of the caller's notifications and how many of all theirs are unread: one statement, the
 * count riding on the page's rows (a second only when the page is empty).
 */
export async function listNotificationsWithUnreadCount(
  db: Reader,
  fields: FieldCipher,
  userId: string,
  filter: { unread?: boolean; limit: number; after?: NotificationCursorKey },
): Promise<NotificationPage & { unreadCount: number }> {
  const { page, unreadCount } = await readPage(db, fields, userId, filter, true);
  return { ...page, unreadCount: unreadCount ?? (await unreadNotificationCount(db, userId)) };
}

async function readPage(
  db: Reader,
  fields: FieldCipher,
  userId: string,
  filter: { unread?: boolean; limit: number; after?: NotificationCursorKey },
  count: boolean,
): Promise<{ page: NotificationPage; unreadCount: number | undefined }> {
  const after = filter.after;
  const rows = await pageRows(
    db,
    { unread: !!filter.unread, after: !!after, count },
    {
      userId,
      afterCreatedAt: after ? new Date(after.createdAt) : undefined,
      afterIndex: after?.ledgerIndex,
      afterId: after?.id,
      limit: filter.limit + 1,
    },
  );
  const page = rows.slice(0, filter.limit);
  const last = page.at(-1);
  const next = rows.length > filter.limit && last ? cursorKeyOf(last) : undefined;
  const counted = rows[0]?.unread_count ?? undefined;
  return {
    page: { items: await views(fields, page), next },
    unreadCount: counted === undefined ? undefined : Number(counted),
  };
}

/** How many of the user's notifications are unread: on its own, or as a subquery of a page's. */
const unreadCountOf = (db: Reader, userId: string) =>
  db
    .selectFrom('notifications as unread')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('unread.recipient_id', '=', userId)
    .where('unread.read_at', 'is', null);

export async function unreadNotificationCount(db: Reader, userId: string): Promise<number> {
  const row = await unreadCountOf(db, userId).executeTakeFirst();
  return Number(row?.n ?? 0);
}

/**
 * The caller's notifications after `after` (an index, or one notification of it) up to ledger
 * index `upTo`, oldest first: what a subscriber has not been sent yet.
 */
export async function notificationsSince(
  db: Reader,
  fields: FieldCipher,
  userId: string,
  after: { ledgerIndex: number; id?: string },
  upTo: number,
  limit: number,
): Promise<NotificationView[]> {
  const rows = await db
    .selectFrom('notifications')
    .select(COLUMNS)
    .where('recipient_id', '=', userId)
    .where(
      after.id === undefined
        ? sql<boolean>`ledger_index > ${after.ledgerIndex}::bigint`
        : sql<boolean>`(ledger_index, id) > (${after.ledgerIndex}::bigint, ${after.id}::text)`,
    )
    .where('ledger_index', '<=', upTo)
    .orderBy('ledger_index')
    .orderBy('id')
    .limit(limit)
    .execute();
  return views(fields, rows);
}

/**
 * Marks the caller's notifications read: those of `ids` (others' ids match nothing), or every one
 * when `ids` is null. Answers how many were unread and are read now.
 */
export async function markNotificationsRead(
  pool: pg.Pool,
  userId: string,
  ids: readonly string[] | null,
): Promise<number> {
  const statement = `update notifications set read_at = now()
      where recipient_id = $1 and read_at is null and ($2::text[] is null or id = any($2::text[]))`;
  const result = await pool.query(statement, [userId, ids]);
  return result.rowCount ?? 0;
}
