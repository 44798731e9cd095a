// Browsers' push subscriptions: what POST /v1/push-subscriptions accepts, and the table's rows.
import { ECDH, randomUUID } from 'node:crypto';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import { z } from 'zod';

const onCurve = (point: Buffer) => {
  try {
    ECDH.convertKey(point, 'prime256v1', undefined, undefined, 'compressed');
    return true;
  } catch {
    return false;
  }
};

/** base64url of `bytes` bytes, of which `first`, when given, is the first. */
const base64url = (bytes: number, what: string, first?: number) =>
  z
    .string(`must be ${what}, base64url`)
    .max(200)
    .refine(
      (text) => {
        if (!/^[A-Za-z0-9_-]+={0,2}$/.test(text)) return false;
        const decoded = Buffer.from(text, 'base64url');
        if (decoded.length !== bytes || (first !== undefined && decoded[0] !== first)) return false;
        return first === undefined || onCurve(decoded);
      },
      { message: `must be ${what} (${bytes} bytes), base64url` },
    );

/** The browser's PushSubscription as `subscription.toJSON()` gives it. */
export const pushSubscriptionBody = z.object({
  endpoint: z.url({ protocol: /^https?$/, error: 'must be the push service’s https:// URL' }).max(2000),
  expirationTime: z.number().nullable().optional(),
  keys: z.object(
    {
      p256dh: base64url(65, 'an uncompressed P-256 public key', 0x04),
      auth: base64url(16, 'the auth secret'),
    },
    'must hold p256dh and auth',
  ),
});
export type PushSubscriptionBody = z.infer<typeof pushSubscriptionBody>;

export const pushUnsubscribeBody = z.object({ endpoint: z.string().min(1).max(2000) });

export interface PushSubscriptionRow {
  id: string;
  userId: string;
  endpoint: string;
  p256dh: string;
  auth: string;
}

/**
 * Keeps a browser's subscription for a person. The endpoint names the browser, so subscribing it
 * again (with new keys, or for another account signed in there) replaces its row and keeps its id.
 */
export async function savePushSubscription(
  db: Kysely<Database>,
  userId: string,
  subscription: PushSubscriptionBody,
): Promise<{ id: string }> {
  return db
    .insertInto('push_subscriptions')
    .values({
      id: randomUUID(),
      user_id: userId,
      endpoint: subscription.endpoint,
      p256dh: subscription.keys.p256dh,
      auth: subscription.keys.auth,
    })
    .onConflict((oc) =>
      oc.column('endpoint').doUpdateSet((eb) => ({
        user_id: eb.ref('excluded.user_id'),
        p256dh: eb.ref('excluded.p256dh'),
        auth: eb.ref('excluded.auth'),
      })),
    )
    .returning('id')
    .executeTakeFirstOrThrow();
}

/** Deletes one of the person's subscriptions, by id or endpoint; false when they have no such one. */
export async function deletePushSubscription(
  db: Kysely<Database>,
  userId: string,
  which: { id: string } | { endpoint: string },
): Promise<boolean> {
  let query = db.deleteFrom('push_subscriptions').where('user_id', '=', userId);
  query = 'id' in which ? query.where('id', '=', which.id) : query.where('endpoint', '=', which.endpoint);
  const result = await query.executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function pushSubscriptionsOf(
  db: Kysely<Database>,
  userId: string,
): Promise<PushSubscriptionRow[]> {
  return db
    .selectFrom('push_subscriptions')
    .select(['id', 'user_id as userId', 'endpoint', 'p256dh', 'auth'])
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .execute();
}

export async function hasPushSubscription(db: Kysely<Database>, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom('push_subscriptions')
    .select('id')
    .where('user_id', '=', userId)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
