// The notification preference and unsubscribe operations for the OpenAPI document.
import type { Operation } from '@connect/http';
import {
  CHANNELS,
  defaultPreference,
  NOTIFICATION_KINDS,
  type Preferences,
  preferenceChangesSchema,
} from '@connect/notifier';
import { z } from 'zod';
import { deadLettersQuery } from './dead-letter-routes.ts';
import { unsubscribeQuery } from './preferences-routes.ts';

const preferences = z.object(
  Object.fromEntries(
    CHANNELS.map((channel) => [
      channel,
      z.object(Object.fromEntries(NOTIFICATION_KINDS.map((kind) => [kind, z.boolean()]))),
    ]),
  ),
);
const defaults = Object.fromEntries(
  CHANNELS.map((channel) => [
    channel,
    Object.fromEntries(NOTIFICATION_KINDS.map((kind) => [kind, defaultPreference(channel, kind)])),
  ]),
) as Preferences;

const deadLetter = z.object({
  id: z.string().meta({ description: 'The job id in the delivery queue' }),
  task: z.enum(['deliver-email', 'deliver-push', 'deliver-sms', 'deliver-webhook']),
  notificationId: z.string().nullable().meta({ description: 'null for a webhook delivery' }),
  recipientId: z.string().nullable(),
  channel: z.enum(['email', 'push', 'sms', 'webhook']),
  webhookDeliveryId: z.string().nullable(),
  attempts: z.number().int(),
  maxAttempts: z.number().int(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const deadLetterExample = {
  id: '4711',
  task: 'deliver-email',
  notificationId: '42:7f3e2a10-5b6c-4d8e-9f01-23456789abcd:invitation',
  recipientId: '7f3e2a10-5b6c-4d8e-9f01-23456789abcd',
  channel: 'email',
  webhookDeliveryId: null,
  attempts: 10,
  maxAttempts: 10,
  lastError: 'Error: connect ECONNREFUSED 10.0.0.25:587',
  createdAt: '2031-05-01T09:30:00.000Z',
  updatedAt: '2031-05-01T12:02:41.000Z',
};
const adminErrors = { '401': 'No or bad access token', '403': 'Not an admin' };

const changes = { email: { lifecycle: true, reminder: false }, sms: { reminder: true } };
const changed: Preferences = {
  ...defaults,
  email: { ...defaults.email, ...changes.email },
  sms: { ...defaults.sms, ...changes.sms },
};

export const notificationOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/me/notification-preferences',
    summary: 'Which notifications the caller gets on which channel (defaults included)',
    auth: true,
    response: preferences,
    examples: { response: defaults },
    responses: { '200': 'Every channel × kind', '401': 'No or bad access token' },
  },
  {
    method: 'put',
    path: '/v1/me/notification-preferences',
    summary:
      'Turn channels on or off per kind (any part of the matrix; in-app stays on, SMS carries reminders only)',
    auth: true,
    body: preferenceChangesSchema,
    response: preferences,
    examples: { request: changes, response: changed },
    responses: {
      '200': 'Every channel × kind, after the change',
      '400': 'An unknown channel or kind, or a value not allowed; `errors` names each field',
      '401': 'No or bad access token',
    },
  },
  {
    method: 'get',
    path: '/v1/unsubscribe',
    summary: 'The page an email’s unsubscribe link opens: a button that POSTs to the same link',
    query: unsubscribeQuery,
    response: z.string().meta({ description: 'an HTML page' }),
    responseType: 'text/html',
    examples: { response: '<!doctype html>…<form method="post">…</form>…' },
    responses: { '200': 'The page', '400': 'Not a valid unsubscribe link' },
  },
  {
    method: 'post',
    path: '/v1/unsubscribe',
    summary:
      'One-click unsubscribe (RFC 8058): turns off email of the link’s kind. Body `List-Unsubscribe=One-Click`, form-encoded or multipart (not read)',
    query: unsubscribeQuery,
    response: z.object({
      channel: z.literal('email'),
      kind: z.enum(NOTIFICATION_KINDS),
      enabled: z.literal(false),
    }),
    examples: { response: { channel: 'email', kind: 'reminder', enabled: false } },
    responses: {
      '200': 'Unsubscribed (HTML when the request accepts text/html)',
      '400': 'Not a valid unsubscribe link',
      '404': 'The account no longer exists',
    },
  },
  {
    method: 'get',
    path: '/v1/admin/notifications/dead-letters',
    summary:
      'Deliveries (email, push, SMS, webhook jobs) that used up their attempts (admins), the latest failure first',
    auth: true,
    query: deadLettersQuery,
    response: z.object({ deadLetters: z.array(deadLetter) }),
    examples: { response: { deadLetters: [deadLetterExample] } },
    responses: { '200': 'The dead letters', '400': 'Invalid query', ...adminErrors },
  },
  {
    method: 'post',
    path: '/v1/admin/notifications/dead-letters/{id}/retry',
    summary: 'Gives a dead delivery job its attempts back and runs it now (admins)',
    auth: true,
    response: z.object({ id: z.string(), retried: z.literal(true) }),
    examples: { response: { id: '4711', retried: true } },
    responses: {
      '202': 'Queued again',
      '400': 'Not a job id',
      ...adminErrors,
      '404': 'No such dead letter',
    },
  },
];
