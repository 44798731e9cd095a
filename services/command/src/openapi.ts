// The command API's operations for the OpenAPI document (libs/http builds it).
import { type CommandName, commandBodies, commitmentTypeSchema, USER_ROLES } from '@connect/domain';
import type { Operation } from '@connect/http';
import { z } from 'zod';
import { accountOperations } from './auth/account-openapi.ts';
import { oidcOperations } from './auth/oidc/openapi.ts';
import { roleOperations } from './auth/role-openapi.ts';
import { signupBody, tokenBody } from './auth/routes.ts';
import { inviteBody, JSON_ACTIONS } from './commitments/routes.ts';
import { notificationOperations } from './notifications/openapi.ts';
import { phoneOperations } from './notifications/phone-openapi.ts';
import { pushOperations } from './notifications/push-openapi.ts';
import { webhookOperations } from './webhooks/openapi.ts';

const COMMITMENT_ID = '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10';
const USER_ID = '5d1c2b7e-8a34-4f0e-b6a9-1e2f3a4b5c6d';
const OTHER_USER_ID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

const receipt = z.object({
  commitmentId: z.uuid(),
  version: z.number().int(),
  events: z.array(
    z.object({ index: z.number().int(), id: z.uuid(), type: z.string(), leafHash: z.string() }),
  ),
});
const emailInvitationAnswer = z.object({
  commitmentId: z.uuid(),
  invitation: z.object({
    email: z.email(),
    role: z.enum(['participant', 'witness']),
    status: z.literal('sent'),
  }),
});
const receiptExample = (version: number, type: string) => ({
  commitmentId: COMMITMENT_ID,
  version,
  events: [
    {
      index: 41 + version,
      id: '3f2e1d0c-9b8a-4766-8554-433221100fed',
      type,
      leafHash: 'q1Jm7m0tYb2I1n6f0xk3V7wq6d5o0rj2cJ3wq1uXh5k=',
    },
  ],
});
const user = z.object({
  id: z.uuid(),
  email: z.email(),
  displayName: z.string(),
  isAdmin: z.boolean(),
  roles: z.array(z.enum(USER_ROLES)).meta({ description: 'admin, auditor: in force at once when granted' }),
  emailVerified: z.boolean().meta({ description: 'the owner followed a link mailed to the address' }),
  avatarUrl: z
    .string()
    .nullable()
    .meta({ description: 'an https URL of the picture (PATCH /v1/me); null: none' }),
});
const userExample = {
  id: USER_ID,
  email: 'ana@example.com',
  displayName: 'Ana',
  isAdmin: false,
  roles: [],
  emailVerified: true,
  avatarUrl: null,
};
const tokenResponse = z.object({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int(),
  refresh_token: z.string(),
  user,
});
const tokenExample = {
  access_token: 'eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl',
  token_type: 'Bearer',
  expires_in: 900,
  refresh_token: 'rt_6b3c0f1e2d4a5b6c7d8e9f00',
  user: userExample,
};
const jwks = z.object({
  keys: z.array(z.looseObject({ kty: z.string(), kid: z.string(), alg: z.string() })),
});
const definedType = z.object({
  type: commitmentTypeSchema,
  event: z.object({ index: z.number().int(), id: z.uuid(), leafHash: z.string() }),
});
const loanType = { key: 'loan', name: 'Loan', requiresAmount: true, requiresDueDate: true, minWitnesses: 1 };

const commandErrors = {
  '400': 'Invalid input; `errors` names each field',
  '401': 'No or bad access token',
  '403': 'Not yours to do',
  '404': 'No such commitment, or not visible to you',
  '409': 'Not allowed in the current state (the reason says why), or an Idempotency-Key still in flight',
  '410': 'The response to this Idempotency-Key is no longer kept (its data was erased)',
  '412': 'If-Match is stale',
  '422': 'Idempotency-Key reused with another request',
  '429': 'Too many commands from this user (CONNECT_COMMAND_RATE_LIMIT a minute); Retry-After says when to',
};
const commandProblems: Operation['problems'] = [
  'idempotency-key-in-flight',
  'idempotency-response-erased',
  'busy',
];

const commandHeaders = [
  { name: 'If-Match', description: '"<version>": refuse with 412 if the commitment moved on' },
  { name: 'Idempotency-Key', description: 'a retry with the same key and body replays the first response' },
];

/** A body each lifecycle command can be sent with. */
const ACTION_EXAMPLES: Partial<Record<CommandName, unknown>> = {
  update: { title: 'Paint the fence', terms: 'Two coats, white', dueAt: '2031-06-01T12:00:00Z' },
  'remove-party': { userId: OTHER_USER_ID },
  'remove-document': { documentId: '7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9' },
  decline: { reason: 'I cannot make it that week' },
  cancel: { reason: 'No longer needed' },
  'claim-fulfilment': { note: 'Done on Saturday; photos attached' },
  dispute: { reason: 'Only one coat was applied' },
  'report-breach': { reason: 'The due date passed and nothing was done' },
  resolve: { outcome: 'fulfilled' },
  'propose-amendment': { changes: { dueAt: '2031-07-01T12:00:00Z' } },
  'accept-amendment': { amendmentId: '2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f' },
  'decline-amendment': { amendmentId: '2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f' },
};
const actionExample = (action: CommandName) =>
  ACTION_EXAMPLES[action] ?? (commandBodies[action].safeParse({}).success ? {} : undefined);

export const commandOperations: Operation[] = [
  {
    method: 'post',
    path: '/v1/auth/signup',
    summary: 'Create an account',
    body: signupBody,
    response: tokenResponse,
    examples: {
      request: { email: 'ana@example.com', password: 'correct horse battery', displayName: 'Ana' },
      response: tokenExample,
    },
    responses: { '201': 'Tokens', '400': 'Invalid input', '409': 'Email taken', '429': 'Too many attempts' },
    problems: ['already-exists'],
  },
  {
    method: 'post',
    path: '/v1/auth/token',
    summary: 'Log in (password) or refresh (refresh_token)',
    body: tokenBody,
    response: tokenResponse,
    examples: {
      request: { grant_type: 'password', email: 'ana@example.com', password: 'correct horse battery' },
      response: tokenExample,
    },
    problems: ['invalid-grant', 'session-expired'],
    responses: {
      '200': 'Tokens',
      '400':
        'Wrong credentials or refresh token, or a timed-out session; also `error` (RFC 6749: invalid_grant, invalid_request, unsupported_grant_type)',
      '429': 'Too many attempts',
    },
  },
  ...accountOperations({ schema: user, example: userExample }),
  {
    method: 'get',
    path: '/v1/auth/me',
    summary: 'The caller',
    auth: true,
    response: user,
    examples: { response: userExample },
    responses: { '200': 'The user', '401': 'No or bad access token' },
  },
  {
    method: 'get',
    path: '/.well-known/jwks.json',
    summary: 'Public keys of access tokens',
    response: jwks,
    examples: {
      response: {
        keys: [
          { kty: 'EC', crv: 'P-256', x: '…', y: '…', kid: 'Xr3f0aQm1b2C3d4E', alg: 'ES256', use: 'sig' },
        ],
      },
    },
    responses: { '200': 'JWKS' },
  },
  {
    method: 'post',
    path: '/v1/commitments',
    summary: 'Create a commitment (a draft; the caller is its creator)',
    body: commandBodies.create,
    auth: true,
    headers: commandHeaders,
    response: receipt,
    examples: {
      request: {
        type: 'personal',
        title: 'Paint the fence',
        description: 'The garden fence, both sides',
        terms: 'One coat, white',
        dueAt: '2031-06-01T12:00:00Z',
      },
      response: receiptExample(1, 'CommitmentCreated'),
    },
    responses: { '201': 'Receipt', ...commandErrors },
    problems: [...(commandProblems ?? []), 'already-exists'],
  },
  {
    method: 'post',
    path: '/v1/commitments/{id}/invite',
    summary:
      'Invite a party by user id (200, a receipt) or by email (202, the same answer whether or not an account has the address: an address without one is mailed an invitation to sign up, which its account takes once it verifies the address; it waits 30 days)',
    body: inviteBody,
    auth: true,
    headers: commandHeaders,
    response: z.union([receipt, emailInvitationAnswer]),
    examples: {
      request: { email: 'ben@example.com', role: 'participant' },
      response: {
        commitmentId: COMMITMENT_ID,
        invitation: { email: 'ben@example.com', role: 'participant', status: 'sent' },
      },
    },
    responses: {
      '200': 'Receipt (invited by userId)',
      '202': 'Invitation sent (invited by email)',
      ...commandErrors,
      '429': 'Too many invitations by email',
    },
    problems: commandProblems,
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}/invitations',
    summary:
      "The commitment's pending invitations by email, to addresses without an account yet (its creator only)",
    auth: true,
    response: z.object({
      invitations: z.array(
        z.object({
          email: z.email(),
          role: z.enum(['participant', 'witness']),
          createdAt: z.iso.datetime(),
          expiresAt: z.iso.datetime(),
        }),
      ),
    }),
    examples: {
      response: {
        invitations: [
          {
            email: 'cleo@example.com',
            role: 'witness',
            createdAt: '2031-05-01T09:30:00.000Z',
            expiresAt: '2031-05-31T09:30:00.000Z',
          },
        ],
      },
    },
    responses: {
      '200': 'The pending invitations',
      '401': 'No or bad access token',
      '403': 'Not the creator',
      '404': 'No such commitment, or not visible to you',
    },
  },
  ...JSON_ACTIONS.map(
    (action): Operation => ({
      method: 'post',
      path: `/v1/commitments/{id}/${action}`,
      summary: `Command: ${action.replaceAll('-', ' ')}`,
      body: commandBodies[action],
      auth: true,
      headers: commandHeaders,
      response: receipt,
      examples: { request: actionExample(action), response: receiptExample(3, 'CommitmentUpdated') },
      responses: { '200': 'Receipt', ...commandErrors },
      problems: commandProblems,
    }),
  ),
  {
    method: 'post',
    path: '/v1/commitments/{id}/documents',
    summary: 'Upload a document (multipart: file, name); the same name adds a version',
    multipart: true,
    auth: true,
    headers: commandHeaders,
    response: receipt,
    examples: { response: receiptExample(2, 'DocumentAttached') },
    problems: commandProblems,
    responses: {
      '201': 'Receipt',
      ...commandErrors,
      '413': 'The file, or the form around it (more than one file or five fields), is too large',
      '415': 'Not multipart/form-data',
    },
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}/documents/{documentId}/content',
    summary: 'Download a document version (latest without ?version=)',
    auth: true,
    query: z.object({ version: z.number().int().min(1).optional() }),
    response: z
      .string()
      .meta({ format: 'binary', description: 'the bytes, with the media type given at upload' }),
    responseType: 'application/octet-stream',
    responses: {
      '200': 'The bytes',
      '401': 'No or bad access token',
      '404': 'No such document, version or commitment',
    },
  },
  {
    method: 'post',
    path: '/v1/commitment-types',
    summary: 'Define a commitment type (admins)',
    body: commitmentTypeSchema,
    auth: true,
    response: definedType,
    examples: {
      request: loanType,
      response: {
        type: loanType,
        event: {
          index: 57,
          id: '6c5b4a39-2817-4f06-9e5d-4c3b2a190817',
          leafHash: 'mD1sXo3uKk0Vh2Yw9q8f7e6d5c4b3a21Z0YxWvUtS=',
        },
      },
    },
    responses: {
      '201': 'Defined',
      '400': 'Invalid input',
      '401': 'No or bad access token',
      '403': 'Not an admin',
      '409': 'Exists',
    },
    problems: ['already-exists'],
  },
  ...oidcOperations,
  ...roleOperations,
  ...webhookOperations,
  ...notificationOperations,
  ...phoneOperations,
  ...pushOperations,
];
