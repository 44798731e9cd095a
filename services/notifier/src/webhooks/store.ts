// Webhook endpoints and their deliveries in Postgres, and one delivery attempt end to end: send,
// record the outcome, schedule the next attempt, give up (and disable the endpoint) after a day.
// A job queue runs `attemptDelivery` for a delivery id at its `nextAttemptAt`.
import { randomUUID } from 'node:crypto';
import type {
  Database,
  WebhookDeliveriesTable,
  WebhookDeliveryStatus,
  WebhookEndpointsTable,
} from '@connect/db';
import { type Kysely, type Selectable, sql } from 'kysely';
import { type DeliverOptions, type DeliveryOutcome, deliverWebhook, type WebhookMessage } from './deliver.ts';
import { nextAttempt } from './retry.ts';
import { generateSecret } from './sign.ts';

type Db = Kysely<Database>;
type EndpointRow = Selectable<WebhookEndpointsTable>;
type DeliveryRow = Selectable<WebhookDeliveriesTable>;

export interface WebhookEndpoint {
  id: string;
  url: string;
  /** null: every event type. */
  events: string[] | null;
  /** enabled, failing (deliveries are being retried) or disabled (they failed for a day). */
  status: 'enabled' | 'failing' | 'disabled';
  createdAt: string;
  failingSince: string | null;
  disabledAt: string | null;
  disabledReason: string | null;
}

export interface WebhookDelivery {
  id: string;
  endpointId: string;
  webhookId: string;
  eventType: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
  createdAt: string;
}

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);

function endpointView(row: EndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    status: row.disabled_at ? 'disabled' : row.failing_since ? 'failing' : 'enabled',
    createdAt: row.created_at.toISOString(),
    failingSince: iso(row.failing_since),
    disabledAt: iso(row.disabled_at),
    disabledReason: row.disabled_reason,
  };
}

function deliveryView(row: DeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    endpointId: row.endpoint_id,
    webhookId: row.webhook_id,
    eventType: row.event_type,
    status: row.status,
    attempts: row.attempts,
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    nextAttemptAt: iso(row.next_attempt_at),
    deliveredAt: iso(row.delivered_at),
    createdAt: row.created_at.toISOString(),
  };
}

/** A new endpoint and its secret: the only time the secret leaves the service. */
export async function createEndpoint(
  db: Db,
  input: { url: string; events?: string[] | undefined; createdBy?: string; now?: Date },
): Promise<WebhookEndpoint & { secret: string }> {
  const row = await db
    .insertInto('webhook_endpoints')
    .values({
      id: randomUUID(),
      url: input.url,
      events: input.events ?? null,
      secret: generateSecret(),
      created_by: input.createdBy ?? null,
      created_at: input.now ?? new Date(),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { ...endpointView(row), secret: row.secret };
}

export async function listEndpoints(db: Db): Promise<WebhookEndpoint[]> {
  const rows = await db
    .selectFrom('webhook_endpoints')
    .selectAll()
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map(endpointView);
}

export async function findEndpoint(db: Db, id: string): Promise<WebhookEndpoint | undefined> {
  const row = await db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst();
  return row && endpointView(row);
}

/** Deletes an endpoint and its deliveries; false if there was none. */
export async function deleteEndpoint(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('webhook_endpoints').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function listDeliveries(db: Db, endpointId: string, limit = 50): Promise<WebhookDelivery[]> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('endpoint_id', '=', endpointId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.map(deliveryView);
}

/** A pending delivery of a message to one endpoint; the same webhookId twice is one delivery. */
export async function createDelivery(
  db: Db,
  endpointId: string,
  message: WebhookMessage,
  now: Date = new Date(),
): Promise<string> {
  const inserted = await db
    .insertInto('webhook_deliveries')
    .values({
      id: randomUUID(),
      endpoint_id: endpointId,
      webhook_id: message.webhookId,
      event_type: message.eventType,
      payload: JSON.stringify(message.payload ?? null),
      next_attempt_at: now,
      created_at: now,
    })
    .onConflict((conflict) => conflict.columns(['endpoint_id', 'webhook_id']).doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted) return inserted.id;
  const existing = await db
    .selectFrom('webhook_deliveries')
    .select('id')
    .where('endpoint_id', '=', endpointId)
    .where('webhook_id', '=', message.webhookId)
    .executeTakeFirstOrThrow();
  return existing.id;
}

/**
 * A delivery of a message to every enabled endpoint that takes its event type; returns the
 * delivery ids to attempt (again the same ids for a message enqueued twice).
 */
export function enqueueWebhook(db: Db, message: WebhookMessage, now: Date = new Date()): Promise<string[]> {
  return enqueueWebhooks(db, [{ message, at: now }]);
}

/**
 * `enqueueWebhook` for many messages at once (a projection batch's events): one read of the
 * endpoints and one insert, however many messages and endpoints.
 */
export async function enqueueWebhooks(
  db: Db,
  messages: readonly { message: WebhookMessage; at: Date }[],
): Promise<string[]> {
  if (messages.length === 0) return [];
  const endpoints = await db
    .selectFrom('webhook_endpoints')
    .select(['id', 'events'])
    .where('disabled_at', 'is', null)
    .execute();
  const rows = messages.flatMap(({ message, at }) =>
    endpoints
      .filter((endpoint) => !endpoint.events || endpoint.events.includes(message.eventType))
      .map((endpoint) => ({ id: randomUUID(), endpointId: endpoint.id, message, at })),
  );
  if (rows.length === 0) return [];
  // Arrays rather than a VALUES list: a batch may hold more rows than a statement has parameters.
  const { rows: ids } = await sql<{ id: string }>`
    insert into webhook_deliveries as d
      (id, endpoint_id, webhook_id, event_type, payload, next_attempt_at, created_at)
    select id, endpoint_id, webhook_id, event_type, payload, at, at
      from unnest(${rows.map((row) => row.id)}::uuid[], ${rows.map((row) => row.endpointId)}::uuid[],
                  ${rows.map((row) => row.message.webhookId)}::text[],
                  ${rows.map((row) => row.message.eventType)}::text[],
                  ${rows.map((row) => JSON.stringify(row.message.payload ?? null))}::jsonb[],
                  ${rows.map((row) => row.at.toISOString())}::timestamptz[])
        as r(id, endpoint_id, webhook_id, event_type, payload, at)
    on conflict (endpoint_id, webhook_id) do update set webhook_id = d.webhook_id
    returning d.id`.execute(db);
  return ids.map((row) => row.id);
}

export interface AttemptDeps extends Omit<DeliverOptions, 'now'> {
  now?: () => Date;
  /** Sends the message (tests may replace it). */
  deliver?: typeof deliverWebhook;
  /** Told when an endpoint is disabled, e.g. a logger's warn. */
  onDisabled?: (endpoint: { id: string; url: string; reason: string }) => void;
}

export interface AttemptResult {
  delivery: WebhookDelivery;
  /** What this attempt got; null when nothing was sent (delivered or dead already, or raced). */
  outcome: DeliveryOutcome | null;
  /** When to attempt again; null when the delivery is settled (delivered or dead). */
  nextAttemptAt: Date | null;
}

/** The delivery is not there (its endpoint was deleted, and its deliveries with it). */
export class NoSuchDelivery extends Error {
  constructor(deliveryId: string) {
    super(`no webhook delivery ${deliveryId}`);
  }
}

/**
 * Attempts one delivery now and records what happened. A delivered or dead delivery is left as it
 * is, so a queue running a job twice sends nothing twice. Throws if there is no such delivery.
 */
export async function attemptDelivery(db: Db, deliveryId: string, deps: AttemptDeps): Promise<AttemptResult> {
  const now = deps.now ?? (() => new Date());
  const row = await db
    .selectFrom('webhook_deliveries')
    .innerJoin('webhook_endpoints', 'webhook_endpoints.id', 'webhook_deliveries.endpoint_id')
    .selectAll('webhook_deliveries')
    .select([
      'webhook_endpoints.url',
      'webhook_endpoints.secret',
      'webhook_endpoints.disabled_at as endpoint_disabled_at',
    ])
    .where('webhook_deliveries.id', '=', deliveryId)
    .executeTakeFirst();
  if (!row) throw new NoSuchDelivery(deliveryId);
  const settled = (delivery: DeliveryRow): AttemptResult => ({
    delivery: deliveryView(delivery),
    outcome: null,
    nextAttemptAt: null,
  });
  if (row.status === 'delivered' || row.status === 'dead') return settled(row);
  if (row.endpoint_disabled_at) {
    const dead = await db
      .updateTable('webhook_deliveries')
      .set({ status: 'dead', next_attempt_at: null, last_error: 'the endpoint is disabled' })
      .where('id', '=', deliveryId)
      .returningAll()
      .executeTakeFirstOrThrow();
    return settled(dead);
  }

  const outcome = await (deps.deliver ?? deliverWebhook)(
    { url: row.url, secret: row.secret },
    { webhookId: row.webhook_id, eventType: row.event_type, payload: row.payload },
    { ...deps, now: now() },
  );
  const at = now();
  const attempts = row.attempts + 1;
  // 410 Gone: the receiver says the endpoint is no more (Standard Webhooks: stop sending).
  const gone = outcome.status === 410;
  const next = outcome.ok ? null : gone ? 'dead' : nextAttempt(attempts, row.created_at, at);
  const status: WebhookDeliveryStatus = outcome.ok ? 'delivered' : next === 'dead' ? 'dead' : 'failed';

  return db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('webhook_deliveries')
      .set({
        attempts,
        status,
        last_status_code: outcome.status,
        last_error: outcome.error,
        next_attempt_at: next instanceof Date ? next : null,
        delivered_at: outcome.ok ? at : null,
      })
      .where('id', '=', deliveryId)
      // Another attempt recorded meanwhile (a job run twice at once) wins; this one is not recorded.
      .where('attempts', '=', row.attempts)
      .returningAll()
      .executeTakeFirst();
    if (!updated) {
      const current = await trx
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('id', '=', deliveryId)
        .executeTakeFirstOrThrow();
      return { ...settled(current), outcome };
    }
    if (outcome.ok) {
      // Only an endpoint that was failing is written: every delivery to it would otherwise queue
      // for its row's lock.
      await trx
        .updateTable('webhook_endpoints')
        .set({ failing_since: null })
        .where('id', '=', row.endpoint_id)
        .where('failing_since', 'is not', null)
        .execute();
    } else if (next === 'dead') {
      const reason = gone
        ? `The endpoint answered 410 Gone on ${at.toISOString()}; nothing more is sent to it.`
        : `Deliveries failed for a day (since ${row.created_at.toISOString()}; last: ${outcome.error}); nothing more is sent to it.`;
      const disabled = await trx
        .updateTable('webhook_endpoints')
        .set({ disabled_at: at, disabled_reason: reason })
        .where('id', '=', row.endpoint_id)
        .where('disabled_at', 'is', null)
        .returning(['id', 'url'])
        .executeTakeFirst();
      if (disabled) deps.onDisabled?.({ ...disabled, reason });
    } else {
      await trx
        .updateTable('webhook_endpoints')
        .set((eb) => ({ failing_since: eb.fn.coalesce('failing_since', eb.val(at)) }))
        .where('id', '=', row.endpoint_id)
        .execute();
    }
    return { delivery: deliveryView(updated), outcome, nextAttemptAt: next instanceof Date ? next : null };
  });
}
