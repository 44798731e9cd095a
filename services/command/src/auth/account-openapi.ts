// The session, verification and recovery operations for the OpenAPI document.
import type { Operation } from '@connect/http';
import { z } from 'zod';
import { eraseBody, FRESH_SIGN_IN_SECONDS } from './erase-routes.ts';
import { profileBody } from './profile-routes.ts';
import {
  accepted,
  EMAIL_CHANGE_ANSWER,
  emailBody,
  passwordBody,
  RECOVER_ANSWER,
  recoverBody,
  resetBody,
  verifyBody,
} from './recovery-routes.ts';
import { logoutBody, logoutQuery, sessionList } from './session-routes.ts';

const TOKEN = 'Zr9kV1qH4mB7xW2cT8pL3nD6fJ0sA5gE1uY9oI4rK2w';
const unauthenticated = { '401': 'No or bad access token' };

/** `user`: the user object of /v1/auth/me and token responses (answered by /verify too). */
export function accountOperations(user: { schema: z.ZodType; example: object }): Operation[] {
  return [
    {
      method: 'post',
      path: '/v1/auth/logout',
      summary:
        'Log out: `scope` local (this session, the default), others (every other session) or global (all), in the query (?scope=, as Supabase) or the body. Ended sessions’ tokens stop working at once and their live subscriptions close (4403).',
      auth: true,
      query: logoutQuery,
      body: logoutBody,
      examples: { request: { scope: 'others' } },
      responses: { '204': 'Logged out', '400': 'Unknown scope', ...unauthenticated },
    },
    {
      method: 'get',
      path: '/v1/auth/sessions',
      summary: 'The caller’s live sessions, the most recently active first, with the client that opened each',
      auth: true,
      response: sessionList,
      examples: {
        response: {
          items: [
            {
              id: '1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9',
              createdAt: '2031-05-01T10:00:00.000Z',
              lastActiveAt: '2031-05-02T08:30:00.000Z',
              userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15',
              address: '203.0.113.7',
              current: true,
            },
          ],
        },
      },
      responses: { '200': 'The sessions', ...unauthenticated },
    },
    {
      method: 'delete',
      path: '/v1/auth/sessions/{id}',
      summary: 'End one of the caller’s sessions: its tokens stop working and its live subscriptions close',
      auth: true,
      responses: {
        '204': 'Ended',
        '400': 'Not a session id',
        ...unauthenticated,
        '404': 'No live session of the caller has this id',
      },
    },
    {
      method: 'post',
      path: '/v1/auth/verify',
      summary:
        'Follow a link mailed to an address: verifies the account’s email, or moves the account to the new address it was mailed to. Each token works once.',
      body: verifyBody,
      response: z.object({ user: user.schema }),
      examples: { request: { token: TOKEN }, response: { user: { ...user.example, emailVerified: true } } },
      responses: {
        '200': 'The account, its email verified',
        '400': 'An invalid, expired or used token; `errors` names body.token',
        '409': 'Another account took the new address meanwhile',
        '429': 'Too many attempts',
      },
      problems: ['already-exists'],
    },
    {
      method: 'post',
      path: '/v1/auth/recover',
      summary:
        'Ask for a password reset link (valid 1 hour, once) by email. The same answer whether or not the address has an account.',
      body: recoverBody,
      response: accepted,
      examples: { request: { email: 'ana@example.com' }, response: RECOVER_ANSWER },
      responses: { '202': 'Asked', '400': 'Not an email address', '429': 'Too many attempts' },
    },
    {
      method: 'post',
      path: '/v1/auth/reset',
      summary:
        'Choose a new password with a recovery token. Verifies the email it was mailed to and ends every session of the account.',
      body: resetBody,
      examples: { request: { token: TOKEN, password: 'a new correct horse' } },
      responses: {
        '204': 'Reset; log in with the new password',
        '400': 'An invalid, expired or used token (body.token), or a too short password (body.password)',
        '429': 'Too many attempts',
      },
    },
    {
      method: 'post',
      path: '/v1/auth/password',
      summary: 'Change the password, given the current one; ends the caller’s other sessions',
      auth: true,
      body: passwordBody,
      examples: {
        request: { currentPassword: 'correct horse battery', newPassword: 'a new correct horse' },
      },
      responses: {
        '204': 'Changed',
        '400': 'A wrong current password (body.currentPassword), or a too short new one',
        ...unauthenticated,
        '429': 'Too many attempts',
      },
    },
    {
      method: 'post',
      path: '/v1/auth/email',
      summary:
        'Move the account to another address, given the password: a link goes to the new address and the change applies when it is followed; the current address gets a notice',
      auth: true,
      body: emailBody,
      response: accepted,
      examples: {
        request: { email: 'ana@new.example', password: 'correct horse battery' },
        response: EMAIL_CHANGE_ANSWER,
      },
      responses: {
        '202': 'A link is on its way to the new address',
        '400': 'A wrong password (body.password), or the current address (body.email)',
        ...unauthenticated,
        '409': 'Another account has this address',
        '429': 'Too many attempts',
      },
      problems: ['already-exists'],
    },
    {
      method: 'patch',
      path: '/v1/me',
      summary:
        'Change the caller’s display name or picture (avatarUrl: an https URL of at most 2048 characters, null to remove it): a ProfileUpdated event in the caller’s profile stream, shown by the query service once projected. Counts against the per-user command limit.',
      auth: true,
      body: profileBody,
      response: user.schema,
      examples: {
        request: { displayName: 'Ana María', avatarUrl: 'https://images.example.com/ana.png' },
        response: {
          ...user.example,
          displayName: 'Ana María',
          avatarUrl: 'https://images.example.com/ana.png',
        },
      },
      responses: {
        '200': 'The caller, changed',
        '400': 'An empty body, or an invalid body.displayName or body.avatarUrl',
        ...unauthenticated,
        '409': 'The profile changed meanwhile, again and again (`busy`); try again',
        '429': 'Too many commands',
      },
      problems: ['busy', 'rate-limited'],
    },
    {
      method: 'delete',
      path: '/v1/me',
      summary: `Erase the caller’s account (crypto-shredding): their data keys are destroyed and their email, phone, display name, picture and identities deleted, so no one can recover them; every session ends and the account cannot sign in again. Commitments they took part in stay for the other parties, naming them "(erased user)", and a UserErased event (their id only) is recorded; proofs, receipts and the audit still hold. Confirm with body.password, or, for an account without a password, from a session opened in the last ${FRESH_SIGN_IN_SECONDS / 60} minutes.`,
      auth: true,
      body: eraseBody,
      examples: { request: { password: 'correct horse battery' } },
      responses: {
        '204': 'Erased',
        '400': 'An invalid body',
        ...unauthenticated,
        '403':
          'A missing or wrong body.password, or (an account without a password) a sign-in too long ago: sign in again',
        '429': 'Too many attempts',
      },
      problems: ['forbidden', 'rate-limited'],
    },
  ];
}
