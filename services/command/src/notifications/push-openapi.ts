// The Web Push operations for the command API's OpenAPI document.
import type { Operation } from '@connect/http';
import { pushSubscriptionBody, pushUnsubscribeBody } from '@connect/notifier';
import { z } from 'zod';

const ENDPOINT = 'https://fcm.googleapis.com/fcm/send/dXJh0Zk6QmE:APA91bH3x9f2';
const subscriptionExample = {
  endpoint: ENDPOINT,
  expirationTime: null,
  keys: {
    p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM',
    auth: 'tBHItJI5svbpez7KI4CCXg',
  },
};
const tokenErrors = { '401': 'No or bad access token' };

export const pushOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/push/vapid-key',
    summary: 'The VAPID public key: the applicationServerKey to subscribe a browser with',
    response: z.object({
      publicKey: z.string().meta({ description: 'base64url of the uncompressed P-256 public key' }),
    }),
    examples: {
      response: {
        publicKey: 'BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U',
      },
    },
    responses: { '200': 'The key' },
  },
  {
    method: 'post',
    path: '/v1/push-subscriptions',
    summary:
      'Subscribe the caller’s browser to push notifications (the PushSubscription JSON); the same endpoint again replaces it',
    auth: true,
    body: pushSubscriptionBody,
    response: z.object({ id: z.uuid() }),
    examples: {
      request: subscriptionExample,
      response: { id: '1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9' },
    },
    responses: {
      '201': 'Subscribed',
      '400':
        'Invalid input, e.g. an endpoint that is not https or keys that are not P-256 (body.endpoint, body.keys.p256dh, body.keys.auth)',
      ...tokenErrors,
    },
  },
  {
    method: 'delete',
    path: '/v1/push-subscriptions',
    summary: 'Unsubscribe a browser of the caller’s by its endpoint',
    auth: true,
    body: pushUnsubscribeBody,
    examples: { request: { endpoint: ENDPOINT } },
    responses: {
      '204': 'Unsubscribed',
      '400': 'Invalid input',
      ...tokenErrors,
      '404': 'The caller has no such subscription',
    },
  },
  {
    method: 'delete',
    path: '/v1/push-subscriptions/{id}',
    summary: 'Unsubscribe a browser of the caller’s by the id POST answered',
    auth: true,
    responses: {
      '204': 'Unsubscribed',
      '400': 'Not an id',
      ...tokenErrors,
      '404': 'The caller has no such subscription',
    },
  },
];
