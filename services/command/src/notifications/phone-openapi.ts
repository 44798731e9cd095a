// The phone number operations (SMS) for the OpenAPI document.
import type { Operation } from '@connect/http';
import { phoneBody, phoneConfirmBody, phoneResponse } from './phone-routes.ts';

const unconfirmed = { phone: '+14155552671', confirmed: false, codeExpiresAt: '2031-06-01T12:10:00.000Z' };

export const phoneOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/me/phone',
    summary: 'The caller’s phone number for SMS, and whether it is confirmed',
    auth: true,
    response: phoneResponse,
    examples: { response: { phone: '+14155552671', confirmed: true, codeExpiresAt: null } },
    responses: { '200': 'The number', '401': 'No or bad access token', '404': 'No number is set' },
  },
  {
    method: 'put',
    path: '/v1/me/phone',
    summary:
      'Set the caller’s phone number (normalised to E.164). A 6-digit code goes to it by SMS at once, valid 10 minutes; no other SMS goes to it until the code is confirmed. The same confirmed number again sends nothing.',
    auth: true,
    body: phoneBody,
    response: phoneResponse,
    examples: { request: { phone: '+1 415 555 2671' }, response: unconfirmed },
    responses: {
      '200': 'The number, unconfirmed, with a code on its way',
      '400': 'Not a phone number SMS can go to; `errors` names body.phone',
      '401': 'No or bad access token',
      '409': 'SMS is off on this service',
      '429': 'Too many codes sent (3 an hour); Retry-After says when to try again',
      '503': 'The code could not be sent just now; try again',
    },
  },
  {
    method: 'post',
    path: '/v1/me/phone/confirm',
    summary: 'Confirm the caller’s phone number with the code sent to it (5 tries per code)',
    auth: true,
    body: phoneConfirmBody,
    examples: { request: { code: '042917' } },
    responses: {
      '204': 'Confirmed',
      '400': 'A wrong or expired code; `errors` names body.code',
      '401': 'No or bad access token',
      '409': 'No code is pending (no number set)',
      '429': 'Too many wrong codes: ask for a new one with PUT /v1/me/phone',
    },
  },
  {
    method: 'delete',
    path: '/v1/me/phone',
    summary: 'Remove the caller’s phone number; no SMS goes to it any more',
    auth: true,
    responses: { '204': 'Removed (or there was none)', '401': 'No or bad access token' },
  },
];
