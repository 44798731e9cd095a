// Values of sealed columns still in the clear: those a migration converted (it has no keys, so it
// wrote them as clear JSON) and those written while CONNECT_ENCRYPTION was off. `connect keys
// seal-existing` seals them in place, a page at a time, while the service runs: a row changes only
// while it still holds the value read, so a concurrent writer's newer value is kept.
import type pg from 'pg';
import { userSubject } from './email-index.ts';
import type { FieldCipher } from './field-cipher.ts';

/** The key and place of each kind of sealed value: one place each, for writers, readers and this. */
export const notificationField = (row: { id: string; recipientId: string }) => ({
  subject: userSubject(row.recipientId),
  place: `notifications:${row.id}`,
});
export const phoneField = (userId: string) => ({
  subject: userSubject(userId),
  place: `phone_numbers:${userId}`,
});
export const idempotentBodyField = (userId: string, key: string) => ({
  subject: userSubject(userId),
  place: `http_idempotency:${userId}:${key}`,
});
/** The data-key subject of what the webhooks keep sealed. */
export const WEBHOOKS_KEY_SUBJECT = 'service:webhooks';
export const webhookSecretField = (endpointId: string) => ({
  subject: WEBHOOKS_KEY_SUBJECT,
  place: `webhook_endpoints:${endpointId}:secret`,
});
export const webhookPayloadField = (deliveryId: string) => ({
  subject: WEBHOOKS_KEY_SUBJECT,
  place: `webhook_deliveries:${deliveryId}`,
});

interface SealedColumn {
  table: string;
  column: string;
  /** The primary key, walked in order (as text). */
  key: string[];
  /** Other columns the field needs. */
  extra?: string[];
  field(row: Record<string, string>): { subject: string; place: string };
}

const SEALED_COLUMNS: SealedColumn[] = [
  {
    table: 'notifications',
    column: 'sealed',
    key: ['id'],
    extra: ['recipient_id'],
    field: (row) => notificationField({ id: String(row.id), recipientId: String(row.recipient_id) }),
  },
  {
    table: 'phone_numbers',
    column: 'phone',
    key: ['user_id'],
    field: (row) => phoneField(String(row.user_id)),
  },
  {
    table: 'http_idempotency',
    column: 'body',
    key: ['user_id', 'key'],
    field: (row) => idempotentBodyField(String(row.user_id), String(row.key)),
  },
  {
    table: 'webhook_endpoints',
    column: 'secret',
    key: ['id'],
    field: (row) => webhookSecretField(String(row.id)),
  },
  {
    table: 'webhook_deliveries',
    column: 'payload',
    key: ['id'],
    field: (row) => webhookPayloadField(String(row.id)),
  },
];

const PAGE = 500;

/** Seals every clear value of the sealed columns; how many rows changed, by table. */
export async function sealClearFields(pool: pg.Pool, fields: FieldCipher): Promise<Map<string, number>> {
  const changed = new Map<string, number>();
  for (const column of SEALED_COLUMNS) changed.set(column.table, await sealColumn(pool, fields, column));
  return changed;
}

async function sealColumn(pool: pg.Pool, fields: FieldCipher, sealed: SealedColumn): Promise<number> {
  const keys = sealed.key.map((k) => `${k}::text`);
  const select = [
    ...keys.map((k, i) => `${k} as "${sealed.key[i]}"`),
    ...(sealed.extra ?? []).map((e) => `${e}::text as "${e}"`),
  ];
  let after: string[] | undefined;
  let changed = 0;
  for (;;) {
    const { rows } = await pool.query<Record<string, string> & { stored: Buffer }>(
      `select ${select.join(', ')}, ${sealed.column} as stored from ${sealed.table}
        where ${after ? `(${keys.join(', ')}) > (${keys.map((_, i) => `$${i + 2}`).join(', ')})` : 'true'}
        order by ${keys.join(', ')} limit $1`,
      [PAGE, ...(after ?? [])],
    );
    const clear = rows.filter((row) => row.stored !== null && row.stored[0] !== 1);
    const values = await fields.open(clear.map((row) => ({ ...sealed.field(row), stored: row.stored })));
    const resealed = await fields.seal(clear.map((row, i) => ({ ...sealed.field(row), value: values[i] })));
    for (const [i, row] of clear.entries()) {
      // An erased subject's rows go with its erasure; none is sealed for it.
      if (resealed[i] === null) continue;
      const match = sealed.key.map((k, j) => `${k}::text = $${j + 3}`).join(' and ');
      const { rowCount } = await pool.query(
        `update ${sealed.table} set ${sealed.column} = $1 where ${sealed.column} = $2 and ${match}`,
        [resealed[i], row.stored, ...sealed.key.map((k) => row[k])],
      );
      changed += rowCount ?? 0;
    }
    const last = rows.at(-1);
    if (!last || rows.length < PAGE) return changed;
    after = sealed.key.map((k) => String(last[k]));
  }
}
