// Delivering one notification by Web Push: encrypted (RFC 8291, aes128gcm) to each browser the
// recipient subscribed, signed with our VAPID key (RFC 8292), POSTed to the push service (RFC 8030).
// A job handler calls `deliver` and nothing else; it rejects when it should be retried.
//
// web-push encrypts and signs; the POST is ours, to the address checked as webhooks are (no private
// addresses unless CONNECT_WEBHOOKS_ALLOW_PRIVATE, no second DNS lookup, no redirects, a timeout).
//
// A retry sends again to every subscription, including those that took the first attempt, so a
// browser may get a notification twice: the payload's `id` is the same each time, and the service
// worker shows it with `tag: id`, which replaces rather than repeats. The Topic header (from the id)
// also lets a push service drop an undelivered earlier copy.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import webpush from 'web-push';
import type { Notification } from '../notification.ts';
import { wants } from '../preferences.ts';
import { resolveWebhookUrl } from '../webhooks/deliver.ts';
import { loadVapidKeys, type VapidConfig, type VapidKeys } from './keys.ts';
import { type PushSubscriptionRow, pushSubscriptionsOf } from './subscriptions.ts';

/** sent: at least one browser took it (none failed); gone: every subscription had expired (removed). */
export type PushOutcome = 'sent' | 'not-wanted' | 'no-subscription' | 'gone';

export interface PushChannel {
  /** Sends the notification to each of the recipient's browsers; rejects when any failed, to retry. */
  deliver(notification: Notification): Promise<PushOutcome>;
  close(): void;
}

export interface PushChannelDeps {
  db: Kysely<Database>;
  vapid: VapidKeys;
  /** Whether push endpoints may be on private or loopback addresses (tests, closed networks). */
  allowPrivate?: boolean;
  /** How long a push service keeps an undelivered message, in seconds. */
  ttlSeconds?: number;
  timeoutMs?: number;
  now?: () => Date;
}

export const PUSH_TTL_SECONDS = 24 * 3600;
const TIMEOUT_MS = 10_000;
/** A push message carries 4096 bytes at most; encryption takes 103 of them. */
const MAX_PAYLOAD_BYTES = 3800;

/** What the service worker receives: enough to show the notification and open the commitment. */
export interface PushPayload {
  id: string;
  kind: string;
  title: string;
  body: string;
  link: string;
}

export function pushPayload(notification: Notification): string {
  const payload: PushPayload = {
    id: notification.id,
    kind: notification.kind,
    title: notification.title.slice(0, 200),
    body: notification.body,
    link: notification.link,
  };
  let text = JSON.stringify(payload);
  while (Buffer.byteLength(text) > MAX_PAYLOAD_BYTES && payload.body.length > 0) {
    payload.body = `${payload.body.slice(0, Math.floor(payload.body.length * 0.8))}…`;
    if (payload.body.length < 16) payload.body = '';
    text = JSON.stringify(payload);
  }
  return text;
}

/** A Topic (≤ 32 base64url characters) from the notification id: copies of one replace each other. */
const topicOf = (id: string) => createHash('sha256').update(id).digest('base64url').slice(0, 32);

type Attempt = { status: number } | { refused: string };

export function pushChannel(deps: PushChannelDeps): PushChannel {
  const { db, vapid } = deps;
  const allowPrivate = deps.allowPrivate ?? false;
  const timeoutMs = deps.timeoutMs ?? TIMEOUT_MS;
  const now = deps.now ?? (() => new Date());

  async function send(subscription: PushSubscriptionRow, notification: Notification): Promise<Attempt> {
    const checked = await resolveWebhookUrl(subscription.endpoint, { allowPrivate });
    if (!checked.ok) {
      if (checked.error.startsWith('has a host name that does not resolve')) {
        throw new Error(`push endpoint ${checked.error}`);
      }
      return { refused: checked.error };
    }
    const request = webpush.generateRequestDetails(
      { endpoint: subscription.endpoint, keys: { p256dh: subscription.p256dh, auth: subscription.auth } },
      pushPayload(notification),
      {
        vapidDetails: vapid,
        TTL: deps.ttlSeconds ?? PUSH_TTL_SECONDS,
        contentEncoding: 'aes128gcm',
        urgency: notification.kind === 'reminder' || notification.kind === 'dispute' ? 'high' : 'normal',
        topic: topicOf(notification.id),
      },
    );
    const { url, address, family } = checked;
    const pinned: LookupFunction = (_hostname, options, callback) => {
      if (options.all) callback(null, [{ address, family }]);
      else callback(null, address, family);
    };
    const post = url.protocol === 'https:' ? https.request : http.request;
    const body = request.body ?? Buffer.alloc(0);
    return new Promise<Attempt>((resolve, reject) => {
      const outgoing = post(
        url,
        {
          method: 'POST',
          headers: { ...request.headers, 'content-length': String(body.length) },
          lookup: pinned,
          agent: false,
          timeout: timeoutMs,
        },
        (response) => {
          response.resume();
          response.on('error', reject);
          response.on('end', () => resolve({ status: response.statusCode ?? 0 }));
        },
      );
      outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }

  const remove = (id: string) => db.deleteFrom('push_subscriptions').where('id', '=', id).execute();

  return {
    async deliver(notification) {
      const subscriptions = await pushSubscriptionsOf(db, notification.recipientId);
      if (subscriptions.length === 0) return 'no-subscription';
      if (!(await wants(db, notification.recipientId, 'push', notification.kind))) return 'not-wanted';
      const failures: string[] = [];
      let sent = 0;
      await Promise.all(
        subscriptions.map(async (subscription) => {
          const host = new URL(subscription.endpoint).host;
          try {
            const attempt = await send(subscription, notification);
            if ('refused' in attempt) await remove(subscription.id);
            else if (attempt.status === 404 || attempt.status === 410) await remove(subscription.id);
            else if (attempt.status >= 200 && attempt.status < 300) {
              sent += 1;
              await db
                .updateTable('push_subscriptions')
                .set({ last_success_at: now() })
                .where('id', '=', subscription.id)
                .execute();
            } else failures.push(`${host} answered ${attempt.status}`);
          } catch (error) {
            failures.push(`${host}: ${(error as Error).message}`);
          }
        }),
      );
      if (failures.length > 0) {
        throw new Error(
          `push to ${failures.length} of ${subscriptions.length} browsers failed: ${failures.join('; ')}`,
        );
      }
      return sent > 0 ? 'sent' : 'gone';
    },
    close() {},
  };
}

/** The push channel: always available, as the VAPID keys are made in the data directory if unset. */
export async function pushChannelFromConfig(
  config: VapidConfig & { webhooksAllowPrivate?: boolean },
  deps: { db: Kysely<Database> },
): Promise<PushChannel> {
  return pushChannel({
    db: deps.db,
    vapid: await loadVapidKeys(config),
    allowPrivate: config.webhooksAllowPrivate ?? false,
  });
}
