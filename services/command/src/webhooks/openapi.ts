// The admin webhook operations for the command API's OpenAPI document.
import type { Operation } from '@connect/http';
import { z } from 'zod';
import { deliveriesQuery, webhookBody } from './routes.ts';

const ENDPOINT_ID = '4a7c1e9b-2d3f-4b6a-8c5e-9f0a1b2c3d4e';

const endpoint = z.object({
  id: z.uuid(),
  url: z.string(),
  events: z.array(z.string()).nullable().meta({ description: 'null: every event type' }),
  status: z.enum(['enabled', 'failing', 'disabled']),
  createdAt: z.string(),
  failingSince: z.string().nullable(),
  disabledAt: z.string().nullable(),
  disabledReason: z.string().nullable(),
});
const delivery = z.object({
  id: z.uuid(),
  endpointId: z.uuid(),
  webhookId: z.string().meta({ description: 'The webhook-id header: the same on every attempt' }),
  eventType: z.string(),
  status: z.enum(['pending', 'delivered', 'failed', 'dead']),
  attempts: z.number().int(),
  lastStatusCode: z.number().int().nullable(),
  lastError: z.string().nullable(),
  nextAttemptAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
  createdAt: z.string(),
});

const endpointExample = {
  id: ENDPOINT_ID,
  url: 'https://hooks.example.com/connect',
  events: ['commitment.activated', 'commitment.fulfilled'],
  status: 'enabled',
  createdAt: '2031-05-01T09:30:00.000Z',
  failingSince: null,
  disabledAt: null,
  disabledReason: null,
};
const deliveryExample = {
  id: '8b9c0d1e-2f3a-4b5c-8d7e-6f5a4b3c2d1e',
  endpointId: ENDPOINT_ID,
  webhookId: 'msg_2b6f0c1e-7d4a-4f3e-9a8b-1c2d3e4f5a6b',
  eventType: 'webhook.test',
  status: 'delivered',
  attempts: 1,
  lastStatusCode: 200,
  lastError: null,
  nextAttemptAt: null,
  deliveredAt: '2031-05-01T09:31:00.000Z',
  createdAt: '2031-05-01T09:31:00.000Z',
};

const adminErrors = { '401': 'No or bad access token', '403': 'Not an admin' };

export const webhookOperations: Operation[] = [
  {
    method: 'post',
    path: '/v1/admin/webhooks',
    summary:
      'Register a webhook endpoint (admins); the answer holds its Standard Webhooks secret, shown this once',
    body: webhookBody,
    auth: true,
    response: endpoint.extend({
      secret: z.string().meta({ description: 'whsec_…: verify signatures with it' }),
    }),
    examples: {
      request: {
        url: 'https://hooks.example.com/connect',
        events: ['commitment.activated', 'commitment.fulfilled'],
      },
      response: { ...endpointExample, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
    },
    responses: {
      '201': 'Registered',
      '400': 'Invalid input, e.g. a URL that is not http(s) or points at a private address (body.url)',
      ...adminErrors,
    },
  },
  {
    method: 'get',
    path: '/v1/admin/webhooks',
    summary: 'The webhook endpoints (admins), with whether deliveries fail or disabled them; no secrets',
    auth: true,
    response: z.object({ endpoints: z.array(endpoint) }),
    examples: { response: { endpoints: [endpointExample] } },
    responses: { '200': 'The endpoints', ...adminErrors },
  },
  {
    method: 'delete',
    path: '/v1/admin/webhooks/{id}',
    summary: 'Delete a webhook endpoint and its deliveries (admins)',
    auth: true,
    responses: { '204': 'Deleted', '400': 'Not an id', ...adminErrors, '404': 'No such endpoint' },
  },
  {
    method: 'get',
    path: '/v1/admin/webhooks/{id}/deliveries',
    summary: 'The latest deliveries to a webhook endpoint (admins), newest first',
    auth: true,
    query: deliveriesQuery,
    response: z.object({ deliveries: z.array(delivery) }),
    examples: { response: { deliveries: [deliveryExample] } },
    responses: { '200': 'The deliveries', '400': 'Invalid input', ...adminErrors, '404': 'No such endpoint' },
  },
  {
    method: 'post',
    path: '/v1/admin/webhooks/{id}/test',
    summary: 'Send a webhook.test event to an endpoint now (admins) and answer with the delivery',
    auth: true,
    response: z.object({ ok: z.boolean(), delivery }),
    examples: { response: { ok: true, delivery: deliveryExample } },
    responses: {
      '200': 'The delivery: delivered, or failed and scheduled for a retry',
      '400': 'Not an id',
      ...adminErrors,
      '404': 'No such endpoint',
      '409': 'The endpoint is disabled',
    },
  },
];
