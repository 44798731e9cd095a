// Web Push: the VAPID public key a browser subscribes with, and the browser's subscriptions.
// Sending lives in @connect/notifier.
import type { Authenticate } from '@connect/auth';
import type { Database } from '@connect/db';
import { badRequest, HttpProblem, parseWith, problem } from '@connect/http';
import {
  deletePushSubscription,
  loadVapidKeys,
  pushSubscriptionBody,
  pushUnsubscribeBody,
  resolveWebhookUrl,
  savePushSubscription,
  type VapidKeys,
} from '@connect/notifier';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';

export interface PushRouteDeps {
  db: Kysely<Database>;
  authenticate: Authenticate;
  dataDir: string;
  /** The VAPID keys; loaded from (or made in) the data directory when absent. */
  vapidKeys?: VapidKeys;
  /** CONNECT_WEBHOOKS_ALLOW_PRIVATE: push endpoints may be on private or loopback addresses. */
  webhooksAllowPrivate?: boolean;
}

const idParam = z.object({ id: z.uuid('must be a push subscription id (UUID)') });

export async function pushRoutes(app: FastifyInstance, deps: PushRouteDeps): Promise<void> {
  const { db, authenticate } = deps;
  const allowPrivate = deps.webhooksAllowPrivate ?? false;
  const keys = deps.vapidKeys ?? (await loadVapidKeys({ dataDir: deps.dataDir }));

  app.get('/v1/push/vapid-key', async () => ({ publicKey: keys.publicKey }));

  app.post('/v1/push-subscriptions', async (request, reply) => {
    const caller = await authenticate(request);
    const body = parseWith(pushSubscriptionBody, request.body);
    if (!allowPrivate && !body.endpoint.startsWith('https://')) {
      throw badRequest([{ path: 'body.endpoint', message: 'must be the push service’s https:// URL' }]);
    }
    const checked = await resolveWebhookUrl(body.endpoint, { allowPrivate });
    if (!checked.ok) throw badRequest([{ path: 'body.endpoint', message: `the URL ${checked.error}` }]);
    return reply.code(201).send(await savePushSubscription(db, caller.userId, body));
  });

  app.delete('/v1/push-subscriptions', async (request, reply) => {
    const caller = await authenticate(request);
    const { endpoint } = parseWith(pushUnsubscribeBody, request.body);
    if (!(await deletePushSubscription(db, caller.userId, { endpoint }))) throw notFound();
    return reply.code(204).send();
  });

  app.delete('/v1/push-subscriptions/:id', async (request, reply) => {
    const caller = await authenticate(request);
    const { id } = parseWith(idParam, request.params, 'path');
    if (!(await deletePushSubscription(db, caller.userId, { id }))) throw notFound();
    return reply.code(204).send();
  });
}

const notFound = () => new HttpProblem(problem(404, 'You have no such push subscription.'));
