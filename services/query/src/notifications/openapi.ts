// The in-app notification operations for the OpenAPI document.
import type { Operation } from '@connect/http';
import { z } from 'zod';
import { markReadBody, notificationsQuery } from './routes.ts';

export const notification = z.object({
  id: z.string().meta({ description: 'ledgerIndex:recipient:kind, stable' }),
  kind: z
    .enum(['invitation', 'response', 'lifecycle', 'amendment', 'dispute', 'document', 'reminder'])
    .meta({ description: 'what it is about' }),
  title: z.string(),
  body: z.string(),
  link: z.string().meta({ description: 'the commitment in the app' }),
  commitmentId: z.uuid(),
  ledgerIndex: z.number().int().meta({ description: 'the ledger entry it came from' }),
  createdAt: z.string(),
  readAt: z.string().nullable(),
});

const COMMITMENT_ID = '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10';
const USER_ID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

export const notificationOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/notifications',
    summary: 'The caller’s notifications, newest first (cursor pagination), and how many are unread',
    auth: true,
    query: notificationsQuery,
    headers: [
      {
        name: 'Connect-Min-Index',
        description: 'wait (bounded) until the read models include this ledger index',
      },
    ],
    response: z.object({
      items: z.array(notification),
      nextCursor: z.string().nullable(),
      unreadCount: z.number().int(),
    }),
    examples: {
      response: {
        items: [
          {
            id: `42:${USER_ID}:invitation`,
            kind: 'invitation',
            title: 'Ana invited you to “Paint the fence”',
            body: 'Ana asks you to be a participant of “Paint the fence”. Read the terms, then accept or decline.',
            link: `https://app.connect.example.com/commitments/${COMMITMENT_ID}`,
            commitmentId: COMMITMENT_ID,
            ledgerIndex: 42,
            createdAt: '2031-05-01T09:30:00.000Z',
            readAt: null,
          },
        ],
        nextCursor: null,
        unreadCount: 1,
      },
    },
    responses: {
      '200': 'A page',
      '400': 'Invalid parameter; `errors` names it',
      '401': 'No or bad access token',
      '503': 'Connect-Min-Index not reached in time (Retry-After)',
    },
  },
  {
    method: 'post',
    path: '/v1/notifications/read',
    summary: 'Mark the caller’s notifications read: the ones named, or all',
    auth: true,
    body: markReadBody,
    headers: [
      {
        name: 'Connect-Min-Index',
        description: 'wait (bounded) until the notifications include this ledger index, then mark',
      },
    ],
    examples: { request: { ids: [`42:${USER_ID}:invitation`] } },
    responses: {
      '204': 'Marked (ids that are not the caller’s are ignored)',
      '400': 'Neither ids nor all, a bad id, or a bad Connect-Min-Index; `errors` names it',
      '401': 'No or bad access token',
      '503': 'Connect-Min-Index not reached in time (Retry-After); nothing marked',
    },
  },
];
