// What the notifications projection hands the queue in each batch's transaction: per new
// notification a job on each configured channel that can reach its recipient (email: everyone;
// push: a person with a subscription; SMS: a person with a confirmed phone), and per ledger event a
// webhook message (a delivery per endpoint that takes its type) with a job per delivery.
// Preferences are not checked here but by each channel when it delivers, so a person who turns a
// kind off before it goes out gets nothing.
import { type Database, type FieldCipher, named, namedStatementsOn } from '@connect/db';
import { Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';
import type { Enqueue, Publish } from '../projection.ts';
import type { Happening } from '../rules.ts';
import type { WebhookMessage } from '../webhooks/deliver.ts';
import { enqueueWebhooks } from '../webhooks/store.ts';
import { addDeliveryJobs, notificationJobs, webhookBatchJobs } from './jobs.ts';
import type { QueuedChannel } from './tasks.ts';

export interface QueueHooks {
  enqueue: Enqueue;
  publish: Publish;
}

/** The projection's hooks for the channels that are configured (each with a handler in the worker). */
export function queueHooks(options: {
  channels: readonly QueuedChannel[];
  maxAttempts: number;
  /** Seals the webhook messages' payloads. */
  cipher: FieldCipher;
}): QueueHooks {
  return {
    async enqueue(client, notifications) {
      const recipients = [...new Set(notifications.map((n) => n.recipientId))];
      const reach = await reachable(client, options.channels, recipients);
      await addDeliveryJobs(client, notificationJobs(notifications, reach, options.maxAttempts));
    },
    async publish(client, happenings) {
      const deliveries = await enqueueWebhooks(
        kyselyOn(client),
        options.cipher,
        happenings.map((happening) => ({
          message: webhookMessageOf(happening),
          at: new Date(happening.recordedAt),
        })),
      );
      await addDeliveryJobs(client, webhookBatchJobs(deliveries));
    },
  };
}

/**
 * The recipients a channel can reach, for the channels that need more of a person than an account.
 * Named: read in every batch with notifications, each is planned once per connection.
 */
const REACHABLE: Partial<Record<QueuedChannel, { name: string; text: string }>> = {
  push: {
    name: 'reachable-by-push',
    text: 'select distinct user_id from push_subscriptions where user_id = any($1::uuid[])',
  },
  sms: {
    name: 'reachable-by-sms',
    text: 'select user_id from phone_numbers where user_id = any($1::uuid[]) and confirmed_at is not null',
  },
};

/**
 * The recipients each configured channel can reach, read in the client's transaction: email every
 * one (an account has an address), push those with a subscription, SMS those with a confirmed phone.
 */
async function reachable(
  client: pg.ClientBase,
  channels: readonly QueuedChannel[],
  recipients: readonly string[],
): Promise<Map<QueuedChannel, ReadonlySet<string>>> {
  const reach = new Map<QueuedChannel, ReadonlySet<string>>();
  for (const channel of channels) {
    const statement = REACHABLE[channel];
    const reached = statement
      ? (await client.query<{ user_id: string }>(named({ ...statement, values: [recipients] }))).rows.map(
          (row) => row.user_id,
        )
      : recipients;
    reach.set(channel, new Set(reached));
  }
  return reach;
}

/**
 * The webhook message of a ledger event: its id is the ledger index (the same however often it is
 * sent), its type `commitment.<event in kebab case>` (CommitmentActivated → commitment.activated,
 * PartyInvited → commitment.party-invited). The payload names the commitment and the entry, and the
 * commitment's status after it; no names, terms or reasons, which the receiver reads through the API.
 */
export function webhookMessageOf(happening: Happening): WebhookMessage {
  return {
    webhookId: `evt_${happening.index}`,
    eventType: webhookEventType(happening.event.type),
    payload: {
      commitmentId: happening.after.id,
      index: happening.index,
      type: happening.event.type,
      status: happening.after.status,
      version: happening.after.version,
      recordedAt: happening.recordedAt,
    },
  };
}

export function webhookEventType(eventType: string): string {
  const name = eventType.replace(/^Commitment(?=[A-Z])/, '');
  return `commitment.${name.replace(/(?<!^)([A-Z])/g, '-$1').toLowerCase()}`;
}

/** A kysely handle that runs every query on the client, i.e. in its transaction. */
function kyselyOn(client: pg.ClientBase): Kysely<Database> {
  const connection = { ...namedStatementsOn(client), release: () => {} };
  return new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: { connect: async () => connection, end: async () => {} } as never,
    }),
  });
}
