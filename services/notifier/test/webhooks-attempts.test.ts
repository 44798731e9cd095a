import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import {
  attemptDelivery,
  createDelivery,
  createEndpoint,
  enqueueWebhook,
  listDeliveries,
  listEndpoints,
} from '../src/webhooks/store.ts';
import { receiver } from './webhooks-support.ts';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 4 });
});
afterAll(() => database.close());

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
    const endpoint = await createEndpoint(database.db, { url: hook.url, now: time.now() });
    const id = await createDelivery(
      database.db,
      endpoint.id,
      { webhookId: 'msg_retry', eventType: 'commitment.activated', payload: { commitmentId: 'c1' } },
      time.now(),
    );
    const deps = { allowPrivate: true, now: time.now };

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
    const endpoint = await createEndpoint(database.db, { url: hook.url, now: time.now() });
    const id = await createDelivery(
      database.db,
      endpoint.id,
      { webhookId: 'msg_dead', eventType: 'commitment.breached', payload: {} },
      time.now(),
    );
    const deps = {
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
    await enqueueWebhook(database.db, { webhookId: 'msg_later', eventType: 'x', payload: {} }, time.now());
    const stale = await createDelivery(database.db, endpoint.id, {
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
  const all = await createEndpoint(database.db, { url: 'https://all.example.com/' });
  const some = await createEndpoint(database.db, {
    url: 'https://some.example.com/',
    events: ['commitment.activated'],
  });
  const message = { webhookId: 'msg_fanout', eventType: 'commitment.fulfilled', payload: {} };
  const ids = await enqueueWebhook(database.db, message);
  expect(await enqueueWebhook(database.db, message)).toEqual(ids);
  expect(await listDeliveries(database.db, all.id)).toHaveLength(1);
  expect(await listDeliveries(database.db, some.id)).toHaveLength(0);
});

test('a 410 Gone disables the endpoint at once', async () => {
  const hook = await receiver(() => ({ status: 410 }));
  try {
    const endpoint = await createEndpoint(database.db, { url: hook.url });
    const id = await createDelivery(database.db, endpoint.id, {
      webhookId: 'msg_gone',
      eventType: 'x',
      payload: {},
    });
    const result = await attemptDelivery(database.db, id, { allowPrivate: true });
    expect(result.delivery.status).toBe('dead');
    expect((await listEndpoints(database.db)).find((e) => e.id === endpoint.id)?.disabledReason).toMatch(
      /410/,
    );
  } finally {
    await hook.close();
  }
});
