import { SealBroken } from '@connect/crypto/envelope';
import type { FieldCipher } from '@connect/db';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { webhookBody } from '../src/webhooks/deliver.ts';
import { generateSecret, webhookHeaders } from '../src/webhooks/sign.ts';
import {
  attemptDelivery,
  createDelivery,
  createEndpoint,
  enqueueWebhook,
  listDeliveries,
  listEndpoints,
} from '../src/webhooks/store.ts';
import { rowsHold, type SealedFields, sealedFields } from './sealed-support.ts';
import { receiver } from './webhooks-support.ts';

let database: TestDatabase;
let sealed: SealedFields;
let cipher: FieldCipher;
beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 4 });
  sealed = await sealedFields(database.pool);
  cipher = sealed.cipher;
});
afterAll(async () => {
  await sealed?.close();
  await database.close();
});

const HOUR = 3600_000;

/** A clock the test moves. */
function clock(start = new Date()) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now = new Date(now.getTime() + ms)) };
}

test('a receiver answering 500 then 200 gets the delivery on the second attempt, with the same id', async () => {
  const hook = await receiver((_request, index) => ({ status: index === 0 ? 500 : 200 }));
  const time = clock();
  try {
    const endpoint = await createEndpoint(database.db, cipher, { url: hook.url, now: time.now() });
    const id = await createDelivery(
      database.db,
      cipher,
      endpoint.id,
      { webhookId: 'msg_retry', eventType: 'commitment.activated', payload: { commitmentId: 'c1' } },
      time.now(),
    );
    const deps = { cipher, allowPrivate: true, now: time.now };

    const first = await attemptDelivery(database.db, id, deps);
    expect(first.delivery).toMatchObject({ status: 'failed', attempts: 1, lastStatusCode: 500 });
    expect(first.nextAttemptAt?.getTime()).toBe(time.now().getTime() + 5000);
    expect((await listEndpoints(database.db)).find((e) => e.id === endpoint.id)?.status).toBe('failing');

    time.advance(5000);
    const second = await attemptDelivery(database.db, id, deps);
    expect(second.delivery).toMatchObject({
      status: 'delivered',
      attempts: 2,
      lastStatusCode: 200,
      lastError: null,
    });
    expect(second.nextAttemptAt).toBeNull();
    expect((await listEndpoints(database.db)).find((e) => e.id === endpoint.id)?.status).toBe('enabled');

    // A job run once more sends nothing.
    const again = await attemptDelivery(database.db, id, deps);
    expect(again.outcome).toBeNull();
    expect(hook.received).toHaveLength(2);
    expect(new Set(hook.received.map((r) => r.headers['webhook-id']))).toEqual(new Set(['msg_retry']));
    const verifier = new Webhook(endpoint.secret);
    for (const { body, headers } of hook.received) {
      // Signed at the (moved) clock's time, so verified without the package's five-minute window.
      const signed = verifier.sign(
        String(headers['webhook-id']),
        new Date(Number(headers['webhook-timestamp']) * 1000),
        body,
      );
      expect(headers['webhook-signature']).toBe(signed);
    }
    const timestamps = hook.received.map((r) => Number(r.headers['webhook-timestamp']));
    expect(timestamps[1] ?? 0).toBeGreaterThan(timestamps[0] ?? 0);
    expect(JSON.parse(hook.received[1]?.body ?? '')).toMatchObject({ data: { commitmentId: 'c1' } });
  } finally {
    await hook.close();
  }
});

test('failing for a day kills the delivery and disables the endpoint, which the admin list shows', async () => {
  const hook = await receiver(() => ({ status: 503 }));
  const time = clock();
  const warnings: string[] = [];
  try {
    const endpoint = await createEndpoint(database.db, cipher, { url: hook.url, now: time.now() });
    const id = await createDelivery(
      database.db,
      cipher,
      endpoint.id,
      { webhookId: 'msg_dead', eventType: 'commitment.breached', payload: {} },
      time.now(),
    );
    const deps = {
      cipher,
      allowPrivate: true,
      now: time.now,
      onDisabled: ({ reason }: { reason: string }) => warnings.push(reason),
    };
    let result = await attemptDelivery(database.db, id, deps);
    while (result.nextAttemptAt) {
      time.advance(result.nextAttemptAt.getTime() - time.now().getTime());
      result = await attemptDelivery(database.db, id, deps);
    }
    expect(result.delivery.lastError).toBe('answered 503');
    expect(result.delivery).toMatchObject({
      status: 'dead',
      attempts: 8,
      lastStatusCode: 503,
      nextAttemptAt: null,
    });
    expect(time.now().getTime() - new Date(result.delivery.createdAt).getTime()).toBeGreaterThanOrEqual(
      24 * HOUR,
    );

    const listed = (await listEndpoints(database.db)).find((e) => e.id === endpoint.id);
    expect(listed).toMatchObject({ status: 'disabled', disabledAt: time.now().toISOString() });
    expect(listed?.disabledReason).toMatch(/failed for a day/);
    expect(warnings).toHaveLength(1);

    // Nothing more is sent to a disabled endpoint.
    await enqueueWebhook(
      database.db,
      cipher,
      { webhookId: 'msg_later', eventType: 'x', payload: {} },
      time.now(),
    );
    const stale = await createDelivery(database.db, cipher, endpoint.id, {
      webhookId: 'msg_stale',
      eventType: 'x',
      payload: {},
    });
    expect((await attemptDelivery(database.db, stale, deps)).delivery).toMatchObject({
      status: 'dead',
      attempts: 0,
    });
    expect(hook.received).toHaveLength(8);
    expect((await listDeliveries(database.db, endpoint.id)).map((d) => d.webhookId)).toEqual([
      'msg_stale',
      'msg_dead',
    ]);
  } finally {
    await hook.close();
  }
});

test('a message goes to the endpoints that take its event type, once however often it is enqueued', async () => {
  const all = await createEndpoint(database.db, cipher, { url: 'https://all.example.com/' });
  const some = await createEndpoint(database.db, cipher, {
    url: 'https://some.example.com/',
    events: ['commitment.activated'],
  });
  const message = { webhookId: 'msg_fanout', eventType: 'commitment.fulfilled', payload: {} };
  const ids = await enqueueWebhook(database.db, cipher, message);
  expect(await enqueueWebhook(database.db, cipher, message)).toEqual(ids);
  expect(await listDeliveries(database.db, all.id)).toHaveLength(1);
  expect(await listDeliveries(database.db, some.id)).toHaveLength(0);
});

test('a 410 Gone disables the endpoint at once', async () => {
  const hook = await receiver(() => ({ status: 410 }));
  try {
    const endpoint = await createEndpoint(database.db, cipher, { url: hook.url });
    const id = await createDelivery(database.db, cipher, endpoint.id, {
      webhookId: 'msg_gone',
      eventType: 'x',
      payload: {},
    });
    const result = await attemptDelivery(database.db, id, { cipher, allowPrivate: true });
    expect(result.delivery.status).toBe('dead');
    expect((await listEndpoints(database.db)).find((e) => e.id === endpoint.id)?.disabledReason).toMatch(
      /410/,
    );
  } finally {
    await hook.close();
  }
});

test('payloads and secrets are sealed at rest; the receiver gets the very bytes and signature of the message', async () => {
  const hook = await receiver(() => ({ status: 204 }));
  const now = new Date('2031-03-04T05:06:07.089Z');
  try {
    const endpoint = await createEndpoint(database.db, cipher, { url: hook.url });
    const message = {
      webhookId: 'msg_sealed',
      eventType: 'commitment.activated',
      payload: {
        commitmentId: 'c-sealed',
        note: 'MARKER-payload-0412',
        amount: { minor: 125, currency: 'EUR' },
      },
    };
    const id = await createDelivery(database.db, cipher, endpoint.id, message, now);
    const at = (table: string) => `select * from ${table} where id = $1`;
    expect(await rowsHold(database.pool, at('webhook_deliveries'), [id], 'MARKER-payload-0412')).toBe(false);
    expect(await rowsHold(database.pool, at('webhook_endpoints'), [endpoint.id], endpoint.secret)).toBe(
      false,
    );
    const base64 = endpoint.secret.slice('whsec_'.length);
    expect(await rowsHold(database.pool, at('webhook_endpoints'), [endpoint.id], base64)).toBe(false);

    await attemptDelivery(database.db, id, { cipher, allowPrivate: true, now: () => now });
    const body = webhookBody(message, now);
    expect(hook.received).toHaveLength(1);
    expect(hook.received[0]?.body).toBe(body);
    expect(hook.received[0]?.headers).toMatchObject(webhookHeaders(endpoint.secret, 'msg_sealed', now, body));
  } finally {
    await hook.close();
  }
});

test('an endpoint and a delivery stored before sealing (clear JSON, as migrated) send what they sent before', async () => {
  const hook = await receiver(() => ({ status: 200 }));
  const now = new Date('2031-03-04T05:06:07.089Z');
  try {
    const secret = generateSecret();
    const payload = { commitmentId: 'c-old', index: 7, type: 'CommitmentActivated', status: 'active' };
    const { rows } = await database.pool.query<{ endpoint: string; delivery: string; as_read: unknown }>(
      `with e as (
         insert into webhook_endpoints (id, url, secret)
         values (gen_random_uuid(), $1, convert_to(to_json($2::text)::text, 'UTF8')) returning id)
       insert into webhook_deliveries (id, endpoint_id, webhook_id, event_type, payload, next_attempt_at)
       select gen_random_uuid(), e.id, 'msg_old', 'commitment.activated', convert_to($3::jsonb::text, 'UTF8'), now()
         from e
       returning endpoint_id as endpoint, id as delivery, $3::jsonb as as_read`,
      [hook.url, secret, JSON.stringify(payload)],
    );
    const row = rows[0];
    if (!row) throw new Error('not inserted');
    await attemptDelivery(database.db, row.delivery, { cipher, allowPrivate: true, now: () => now });
    // Before, the payload was read back from jsonb: the same value, in jsonb's key order.
    const body = webhookBody(
      { webhookId: 'msg_old', eventType: 'commitment.activated', payload: row.as_read },
      now,
    );
    expect(hook.received[0]?.body).toBe(body);
    expect(hook.received[0]?.headers).toMatchObject(webhookHeaders(secret, 'msg_old', now, body));
  } finally {
    await hook.close();
  }
});

test('a sealed payload or secret moved to another row does not open', async () => {
  const hook = await receiver(() => ({ status: 200 }));
  try {
    const [one, two] = [
      await createEndpoint(database.db, cipher, { url: hook.url }),
      await createEndpoint(database.db, cipher, { url: hook.url }),
    ];
    const message = (webhookId: string) => ({ webhookId, eventType: 'x', payload: { webhookId } });
    const [a, b] = [
      await createDelivery(database.db, cipher, one.id, message('msg_a')),
      await createDelivery(database.db, cipher, one.id, message('msg_b')),
    ];
    await database.pool.query(
      'update webhook_deliveries set payload = (select payload from webhook_deliveries where id = $1) where id = $2',
      [a, b],
    );
    await expect(attemptDelivery(database.db, b, { cipher, allowPrivate: true })).rejects.toThrow(SealBroken);

    const c = await createDelivery(database.db, cipher, two.id, message('msg_c'));
    await database.pool.query(
      'update webhook_endpoints set secret = (select secret from webhook_endpoints where id = $1) where id = $2',
      [one.id, two.id],
    );
    await expect(attemptDelivery(database.db, c, { cipher, allowPrivate: true })).rejects.toThrow(SealBroken);
    expect(hook.received).toHaveLength(0);
    // The rows left as they were still deliver.
    expect((await attemptDelivery(database.db, a, { cipher, allowPrivate: true })).delivery.status).toBe(
      'delivered',
    );
  } finally {
    await hook.close();
  }
});
