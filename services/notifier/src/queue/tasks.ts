// The notifier's delivery jobs: one task per channel, named here so the projection that adds the
// jobs and the worker that runs them agree. A channel registers a handler for its task; a channel
// with no handler gets no jobs.
import type { Notification } from '../notification.ts';

export const DELIVERY_TASKS = {
  email: 'deliver-email',
  push: 'deliver-push',
  sms: 'deliver-sms',
  webhook: 'deliver-webhook',
} as const;

/** The channels a notification is delivered on through the queue (in-app is the table itself). */
export type QueuedChannel = 'email' | 'push' | 'sms';
export const QUEUED_CHANNELS: readonly QueuedChannel[] = ['email', 'push', 'sms'];

export type DeliveryTask = (typeof DELIVERY_TASKS)[keyof typeof DELIVERY_TASKS];

/** A job's payload for a notification on a channel; the worker reads the notification by id. */
export interface NotificationJob {
  notificationId: string;
  recipientId: string;
  channel: QueuedChannel;
}

/** A job's payload for one webhook delivery (a row of webhook_deliveries): a retry. */
export interface WebhookJob {
  deliveryId: string;
}

/** A batch job's payload: first attempts of deliveries to one endpoint, by id. */
export type WebhookBatchJob = string[];

/**
 * Delivers one notification on one channel. Resolves when it is done (sent, or not wanted: the
 * channel checks the person's preferences at delivery time); rejects to have the job retried.
 */
export interface ChannelHandler {
  deliver(notification: Notification): Promise<unknown>;
}

export type ChannelHandlers = Partial<Record<QueuedChannel, ChannelHandler>>;

/** The job key of a notification on a channel: a batch enqueued twice adds one job. */
export const notificationJobKey = (notificationId: string, channel: QueuedChannel) =>
  `${notificationId}:${channel}`;

/** The job key of a webhook delivery's next attempt (its number), so the task can re-add itself. */
export const webhookJobKey = (deliveryId: string, attempt: number) => `webhook:${deliveryId}:${attempt}`;
