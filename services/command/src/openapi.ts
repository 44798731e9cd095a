// The command API's operations for the OpenAPI document (libs/http builds it).
import { commandBodies, commitmentTypeSchema } from '@connect/domain';
import type { Operation } from '@connect/http';
import { z } from 'zod';
import { signupBody, tokenBody } from './auth/routes.ts';
import { inviteBody, JSON_ACTIONS } from './commitments/routes.ts';

const receipt = z.object({
  commitmentId: z.uuid(),
  version: z.number().int(),
  events: z.array(
    z.object({ index: z.number().int(), id: z.uuid(), type: z.string(), leafHash: z.string() }),
  ),
});
const tokenResponse = z.object({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int(),
  refresh_token: z.string(),
  user: z.object({ id: z.uuid(), email: z.email(), displayName: z.string(), isAdmin: z.boolean() }),
});
const commandErrors = {
  '400': 'Invalid input; `errors` names each field',
  '401': 'No or bad access token',
  '403': 'Not yours to do',
  '404': 'No such commitment, or not visible to you',
  '409': 'Not allowed in the current state (the reason says why), or an Idempotency-Key still in flight',
  '412': 'If-Match is stale',
  '422': 'Idempotency-Key reused with another request',
};

const commandHeaders = [
  { name: 'If-Match', description: '"<version>": refuse with 412 if the commitment moved on' },
  { name: 'Idempotency-Key', description: 'a retry with the same key and body replays the first response' },
];

export const commandOperations: Operation[] = [
  {
    method: 'post',
    path: '/v1/auth/signup',
    summary: 'Create an account',
    body: signupBody,
    response: tokenResponse,
    responses: { '201': 'Tokens', '400': 'Invalid input', '409': 'Email taken', '429': 'Too many attempts' },
  },
  {
    method: 'post',
    path: '/v1/auth/token',
    summary: 'Log in (password) or refresh (refresh_token)',
    body: tokenBody,
    response: tokenResponse,
    responses: {
      '200': 'Tokens',
      '400': 'Wrong credentials or refresh token',
      '401': 'The session timed out (/problems/session-expired)',
      '429': 'Too many attempts',
    },
  },
  {
    method: 'post',
    path: '/v1/auth/logout',
    summary: 'End the session; its tokens stop working at once',
    auth: true,
    responses: { '204': 'Logged out', '401': 'No or bad access token' },
  },
  {
    method: 'get',
    path: '/v1/auth/me',
    summary: 'The caller',
    auth: true,
    responses: { '200': 'The user', '401': 'No or bad access token' },
  },
  {
    method: 'get',
    path: '/.well-known/jwks.json',
    summary: 'Public keys of access tokens',
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
    responses: { '201': 'Receipt', ...commandErrors },
  },
  {
    method: 'post',
    path: '/v1/commitments/{id}/invite',
    summary: 'Invite a party by user id or email',
    body: inviteBody,
    auth: true,
    headers: commandHeaders,
    response: receipt,
    responses: { '200': 'Receipt', ...commandErrors, '429': 'Too many invitations by email' },
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
      responses: { '200': 'Receipt', ...commandErrors },
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
    responses: { '201': 'Defined', '403': 'Not an admin', '409': 'Exists' },
  },
];
