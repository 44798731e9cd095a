// Webhook endpoints and their deliveries in Postgres, and one delivery attempt end to end: send,
// record the outcome, schedule the next attempt, give up (and disable the endpoint) after a day.
// A job queue runs `attemptDelivery` for a delivery id at its `nextAttemptAt`.
// Endpoints' secrets and deliveries' payloads are stored sealed under the service's own key (the
// endpoints belong to the service, not to a person), each bound to its row.
import { randomUUID } from 'node:crypto';
import {
  compiledOnce,
  type Database,
  type FieldCipher,
  prepared,
  WEBHOOKS_KEY_SUBJECT,
  type WebhookDeliveriesTable,
  type WebhookDeliveryStatus,
  type WebhookEndpointsTable,
  webhookPayloadField,
  webhookSecretField,
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

/** Values sealed under the webhooks' key, which is never erased. */
async function sealAll(cipher: FieldCipher, fields: Parameters<FieldCipher['seal']>[0]): Promise<Buffer[]> {
  const sealed = await cipher.seal(fields);
  return sealed.map((value) => {
    if (!value) throw new Error(`the data key ${WEBHOOKS_KEY_SUBJECT} is erased`);
    return value;
  });
}

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
  cipher: FieldCipher,
  input: { url: string; events?: string[] | undefined; createdBy?: string; now?: Date },
): Promise<WebhookEndpoint & { secret: string }> {
  const id = randomUUID();
  const secret = generateSecret();
  const [sealed] = await sealAll(cipher, [{ ...webhookSecretField(id), value: secret }]);
  const row = await db
    .insertInto('webhook_endpoints')
    .values({
      id,
      url: input.url,
      events: input.events ?? null,
      secret: sealed as Buffer,
      created_by: input.createdBy ?? null,
      created_at: input.now ?? new Date(),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { ...endpointView(row), secret };
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
  cipher: FieldCipher,
  endpointId: string,
  message: WebhookMessage,
  now: Date = new Date(),
): Promise<string> {
  const id = randomUUID();
  const [payload] = await sealAll(cipher, [{ ...webhookPayloadField(id), value: message.payload ?? null }]);
  const inserted = await db
    .insertInto('webhook_deliveries')
    .values({
      id,
      endpoint_id: endpointId,
      webhook_id: message.webhookId,
      event_type: message.eventType,
      payload: payload as Buffer,
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
export async function enqueueWebhook(
  db: Db,
  cipher: FieldCipher,
  message: WebhookMessage,
  now: Date = new Date(),
): Promise<string[]> {
  return (await enqueueWebhooks(db, cipher, [{ message, at: now }])).map((delivery) => delivery.id);
}

/** The endpoints that take deliveries; prepared, as each batch of events reads them. */
const enabledEndpoints = compiledOnce(
  (db: Db) => db.selectFrom('webhook_endpoints').select(['id', 'events']).where('disabled_at', 'is', null),
  (query) => prepared('webhook-endpoints-enabled', query),
);

/**
 * `enqueueWebhook` for many messages at once (a projection batch's events): one read of the
 * endpoints and one insert, however many messages and endpoints.
 */
export async function enqueueWebhooks(
  db: Db,
  cipher: FieldCipher,
  messages: readonly { message: WebhookMessage; at: Date }[],
): Promise<{ id: string; endpointId: string }[]> {
  if (messages.length === 0) return [];
  const endpoints = await enabledEndpoints(db);
  const rows = messages.flatMap(({ message, at }) =>
    endpoints
      .filter((endpoint) => !endpoint.events || endpoint.events.includes(message.eventType))
      .map((endpoint) => ({ id: randomUUID(), endpointId: endpoint.id, message, at })),
  );
  if (rows.length === 0) return [];
  // A message sent again (the same webhook id) keeps its first row, and the payload sealed for it.
  const payloads = await sealAll(
    cipher,
    rows.map((row) => ({ ...webhookPayloadField(row.id), value: row.message.payload ?? null })),
  );
  // Arrays rather than a VALUES list: a batch may hold more rows than a statement has parameters.
  const { rows: ids } = await sql<{ id: string; endpointId: string }>`
    insert into webhook_deliveries as d
      (id, endpoint_id, webhook_id, event_type, payload, next_attempt_at, created_at)
    select id, endpoint_id, webhook_id, event_type, payload, at, at
      from unnest(${rows.map((row) => row.id)}::uuid[], ${rows.map((row) => row.endpointId)}::uuid[],
                  ${rows.map((row) => row.message.webhookId)}::text[],
                  ${rows.map((row) => row.message.eventType)}::text[],
                  ${payloads}::bytea[],
                  ${rows.map((row) => row.at.toISOString())}::timestamptz[])
        as r(id, endpoint_id, webhook_id, event_type, payload, at)
    on conflict (endpoint_id, webhook_id) do update set webhook_id = d.webhook_id
    returning d.id, d.endpoint_id as "endpointId"`.execute(db);
  return ids;
}

export interface AttemptDeps extends Omit<DeliverOptions, 'now'> {
  /** Opens the endpoints' secrets and the deliveries' payloads. */
  cipher: FieldCipher;
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
  const [result] = await attemptDeliveries(db, [deliveryId], deps);
  if (!result) throw new NoSuchDelivery(deliveryId);
  return result;
}

/** Messages sent at once by one batch of attempts. */
const SENDING_AT_ONCE = 16;

type AttemptRow = DeliveryRow & {
  url: string;
  secret: Uint8Array;
  endpoint_disabled_at: Date | null;
  correlation_id: string | null;
};

/**
 * `attemptDelivery` for many deliveries (a batch job): one read, the messages sent a few at a time,
 * one write of the outcomes and at most one write per endpoint. Deliveries that are not there are
 * left out of the results.
 */
export async function attemptDeliveries(
  db: Db,
  deliveryIds: readonly string[],
  deps: AttemptDeps,
): Promise<AttemptResult[]> {
  if (deliveryIds.length === 0) return [];
  const now = deps.now ?? (() => new Date());
  const rows: AttemptRow[] = await db
    .selectFrom('webhook_deliveries')
    .innerJoin('webhook_endpoints', 'webhook_endpoints.id', 'webhook_deliveries.endpoint_id')
    .selectAll('webhook_deliveries')
    .select([
      'webhook_endpoints.url',
      'webhook_endpoints.secret',
      'webhook_endpoints.disabled_at as endpoint_disabled_at',
      // The correlation id of the entry an event's message is about (`evt_<index>`): the trace
      // the delivery continues (traceparent).
      sql<string | null>`(select e.meta->>'correlationId' from ledger_entries e
        where e.index = case when webhook_deliveries.webhook_id ~ '^evt_[0-9]{1,18}$'
          then substring(webhook_deliveries.webhook_id from 5)::bigint end)`.as('correlation_id'),
    ])
    .where('webhook_deliveries.id', 'in', [...deliveryIds])
    .execute();
  const settled = (delivery: DeliveryRow): AttemptResult => ({
    delivery: deliveryView(delivery),
    outcome: null,
    nextAttemptAt: null,
  });
  const results: AttemptResult[] = [];
  const due = rows.filter((row) => {
    if (row.status !== 'delivered' && row.status !== 'dead') return true;
    results.push(settled(row));
    return false;
  });
  const toEndpointDisabled = due.filter((row) => row.endpoint_disabled_at);
  if (toEndpointDisabled.length > 0) {
    const dead = await db
      .updateTable('webhook_deliveries')
      .set({ status: 'dead', next_attempt_at: null, last_error: 'the endpoint is disabled' })
      .where(
        'id',
        'in',
        toEndpointDisabled.map((row) => row.id),
      )
      .returningAll()
      .execute();
    results.push(...dead.map(settled));
  }
  const sending = due.filter((row) => !row.endpoint_disabled_at);
  const opened = await deps.cipher.open(
    sending.flatMap((row) => [
      { ...webhookSecretField(row.endpoint_id), stored: row.secret },
      { ...webhookPayloadField(row.id), stored: row.payload },
    ]),
  );
  if (opened.some((_, i) => i % 2 === 0 && opened[i] === undefined))
    throw new Error(`the data key ${WEBHOOKS_KEY_SUBJECT} is erased: no endpoint secret opens`);
  const outcomes = await inBatches(sending, SENDING_AT_ONCE, (row, i) =>
    (deps.deliver ?? deliverWebhook)(
      { url: row.url, secret: opened[2 * i] as string },
      {
        webhookId: row.webhook_id,
        eventType: row.event_type,
        payload: opened[2 * i + 1],
        correlationId: row.correlation_id,
      },
      { ...deps, now: now() },
    ),
  );
  if (sending.length === 0) return results;
  const at = now();
  const attempts = sending.map((row, i) => {
    const outcome = outcomes[i] as DeliveryOutcome;
    // 410 Gone: the receiver says the endpoint is no more (Standard Webhooks: stop sending).
    const gone = outcome.status === 410;
    const next = outcome.ok ? null : gone ? 'dead' : nextAttempt(row.attempts + 1, row.created_at, at);
    const status: WebhookDeliveryStatus = outcome.ok ? 'delivered' : next === 'dead' ? 'dead' : 'failed';
    return { row, outcome, gone, next: next instanceof Date ? next : null, status };
  });

  return db.transaction().execute(async (trx) => {
    // An attempt recorded meanwhile (a job run twice at once) wins; this one is not recorded.
    const { rows: updated } = await sql<DeliveryRow>`
      update webhook_deliveries as d set
        attempts = a.previous + 1, status = a.status, last_status_code = a.code, last_error = a.error,
        next_attempt_at = a.next, delivered_at = a.delivered
      from unnest(${attempts.map((a) => a.row.id)}::uuid[],
                  ${attempts.map((a) => a.row.attempts)}::integer[],
                  ${attempts.map((a) => a.status)}::text[],
                  ${attempts.map((a) => a.outcome.status)}::integer[],
                  ${attempts.map((a) => a.outcome.error)}::text[],
                  ${attempts.map((a) => a.next?.toISOString() ?? null)}::timestamptz[],
                  ${attempts.map((a) => (a.outcome.ok ? at.toISOString() : null))}::timestamptz[])
        as a(id, previous, status, code, error, next, delivered)
      where d.id = a.id and d.attempts = a.previous
      returning d.*`.execute(trx);
    const recorded = new Map(updated.map((row) => [row.id, row]));
    const raced = attempts.filter((a) => !recorded.has(a.row.id)).map((a) => a.row.id);
    const current =
      raced.length > 0
        ? await trx.selectFrom('webhook_deliveries').selectAll().where('id', 'in', raced).execute()
        : [];
    for (const row of current) results.push({ ...settled(row), outcome: null });
    for (const a of attempts) {
      const row = recorded.get(a.row.id);
      if (row) results.push({ delivery: deliveryView(row), outcome: a.outcome, nextAttemptAt: a.next });
    }
    await recordEndpointHealth(
      trx,
      attempts.filter((a) => recorded.has(a.row.id)),
      at,
      deps,
    );
    return results;
  });
}

/**
 * What the recorded attempts say about their endpoints: one that delivered is no longer failing
 * (written only if it was); one that failed is failing since its first failure; one whose delivery
 * is dead (a day of failures, or 410 Gone) is disabled, and the admins told.
 */
async function recordEndpointHealth(
  trx: Db,
  attempts: readonly {
    row: AttemptRow;
    gone: boolean;
    status: WebhookDeliveryStatus;
    outcome: DeliveryOutcome;
  }[],
  at: Date,
  deps: AttemptDeps,
): Promise<void> {
  const byEndpoint = new Map<string, (typeof attempts)[number][]>();
  for (const a of attempts)
    byEndpoint.set(a.row.endpoint_id, [...(byEndpoint.get(a.row.endpoint_id) ?? []), a]);
  for (const [endpointId, made] of byEndpoint) {
    const dead = made.find((a) => a.status === 'dead');
    if (dead) {
      const reason = dead.gone
        ? `The endpoint answered 410 Gone on ${at.toISOString()}; nothing more is sent to it.`
        : `Deliveries failed for a day (since ${dead.row.created_at.toISOString()}; last: ${dead.outcome.error}); nothing more is sent to it.`;
      const disabled = await trx
        .updateTable('webhook_endpoints')
        .set({ disabled_at: at, disabled_reason: reason })
        .where('id', '=', endpointId)
        .where('disabled_at', 'is', null)
        .returning(['id', 'url'])
        .executeTakeFirst();
      if (disabled) deps.onDisabled?.({ ...disabled, reason });
    } else if (made.some((a) => a.status === 'failed')) {
      await trx
        .updateTable('webhook_endpoints')
        .set((eb) => ({ failing_since: eb.fn.coalesce('failing_since', eb.val(at)) }))
        .where('id', '=', endpointId)
        .execute();
    } else {
      // Only an endpoint that was failing is written: every delivery to it would otherwise queue
      // for its row's lock.
      await trx
        .updateTable('webhook_endpoints')
        .set({ failing_since: null })
        .where('id', '=', endpointId)
        .where('failing_since', 'is not', null)
        .execute();
    }
  }
}

/** `work` on each item, at most `atOnce` at a time; the results in the items' order. */
async function inBatches<T, R>(
  items: readonly T[],
  atOnce: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(atOnce, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i] as T, i);
      }
    }),
  );
  return results;
}
