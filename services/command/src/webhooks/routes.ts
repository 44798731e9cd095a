// Admins register webhook endpoints for integrators (Standard Webhooks), see their deliveries and
// send a test event. Sending and retrying live in @connect/notifier.
import { randomUUID } from 'node:crypto';
import type { Authenticate } from '@connect/auth';
import type { Database } from '@connect/db';
import { badRequest, HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import {
  attemptDelivery,
  createDelivery,
  createEndpoint,
  deleteEndpoint,
  findEndpoint,
  listDeliveries,
  listEndpoints,
  resolveWebhookUrl,
} from '@connect/notifier';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';

export const webhookBody = z
  .object({
    url: z.string().max(2000),
    events: z
      .array(
        z
          .string()
          .regex(/^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/i, 'must be an event type, e.g. commitment.activated')
          .max(100),
      )
      .max(100)
      .optional()
      .meta({ description: 'The event types to send; all when absent' }),
  })
  .strict();

export const deliveriesQuery = z
  .object({ limit: z.coerce.number().int().min(1).max(200).optional() })
  .strict();

const idParam = z.object({ id: z.uuid('must be a webhook endpoint id (UUID)') });

export interface WebhookRouteDeps {
  db: Kysely<Database>;
  /** Its cipher seals and opens the endpoints' secrets and the deliveries' payloads (cipher.fields). */
  ledger: Pick<Ledger, 'cipher'>;
  authenticate: Authenticate;
  /** CONNECT_WEBHOOKS_ALLOW_PRIVATE: endpoints may be on private, loopback or link-local addresses. */
  webhooksAllowPrivate?: boolean;
  now?: () => Date;
}

export async function webhookRoutes(app: FastifyInstance, deps: WebhookRouteDeps): Promise<void> {
  const allowPrivate = deps.webhooksAllowPrivate ?? false;
  const cipher = deps.ledger.cipher.fields;

  async function admin(request: FastifyRequest) {
    const caller = await deps.authenticate(request);
    if (!caller.isAdmin) throw new HttpProblem(problem(403, 'Only an admin can manage webhooks.'));
    return caller;
  }

  async function endpointOf(request: FastifyRequest) {
    const { id } = parseWith(idParam, request.params, 'path');
    const endpoint = await findEndpoint(deps.db, id);
    if (!endpoint) throw new HttpProblem(problem(404, 'No such webhook endpoint.'));
    return endpoint;
  }

  app.post('/v1/admin/webhooks', async (request, reply) => {
    const caller = await admin(request);
    const body = parseWith(webhookBody, request.body);
    const checked = await resolveWebhookUrl(body.url, { allowPrivate });
    if (!checked.ok) throw badRequest([{ path: 'body.url', message: `the URL ${checked.error}` }]);
    const endpoint = await createEndpoint(deps.db, cipher, {
      url: checked.url.href,
      events: body.events === undefined ? undefined : [...new Set(body.events)],
      createdBy: caller.userId,
      now: deps.now?.(),
    });
    return reply.code(201).send(endpoint);
  });

  app.get('/v1/admin/webhooks', async (request) => {
    await admin(request);
    return { endpoints: await listEndpoints(deps.db) };
  });

  app.delete('/v1/admin/webhooks/:id', async (request, reply) => {
    await admin(request);
    const { id } = parseWith(idParam, request.params, 'path');
    if (!(await deleteEndpoint(deps.db, id)))
      throw new HttpProblem(problem(404, 'No such webhook endpoint.'));
    return reply.code(204).send();
  });

  app.get('/v1/admin/webhooks/:id/deliveries', async (request) => {
    await admin(request);
    const endpoint = await endpointOf(request);
    const { limit } = parseWith(deliveriesQuery, request.query, 'query');
    return { deliveries: await listDeliveries(deps.db, endpoint.id, limit) };
  });

  app.post('/v1/admin/webhooks/:id/test', async (request) => {
    const caller = await admin(request);
    const endpoint = await endpointOf(request);
    if (endpoint.disabledAt) {
      throw new HttpProblem(
        problem(409, `The endpoint is disabled (${endpoint.disabledReason}); register it again to use it.`),
      );
    }
    const now = deps.now ?? (() => new Date());
    const deliveryId = await createDelivery(
      deps.db,
      cipher,
      endpoint.id,
      {
        webhookId: `msg_${randomUUID()}`,
        eventType: 'webhook.test',
        payload: { endpointId: endpoint.id, requestedBy: caller.userId },
      },
      now(),
    );
    const result = await attemptDelivery(deps.db, deliveryId, { cipher, allowPrivate, now });
    return { ok: result.delivery.status === 'delivered', delivery: result.delivery };
  });
}
