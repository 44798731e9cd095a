// Social login's operations for the OpenAPI document.
import type { Operation } from '@connect/http';
import { z } from 'zod';
import { identityResponse, startQuery } from './routes.ts';

const identityExample = {
  provider: 'google',
  email: 'ana@example.com',
  createdAt: '2031-05-01T09:30:00.000Z',
  lastSignInAt: '2031-05-20T18:02:11.000Z',
};

export const oidcOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/auth/oidc/{provider}/start',
    summary:
      'Sign in with an OpenID provider (CONNECT_OIDC_<NAME>_*): redirects the browser to it; it comes back to redirect_to with ?code= (exchange it at POST /v1/auth/token, grant_type=authorization_code) or ?error=&error_description=',
    query: startQuery,
    responses: {
      '302': 'To the provider’s authorization endpoint',
      '400': 'redirect_to is not one of CONNECT_AUTH_REDIRECT_URLS (`errors` names `query.redirect_to`)',
      '404': 'No provider with this name is configured',
      '502': 'The provider cannot be reached',
    },
  },
  {
    method: 'get',
    path: '/v1/auth/oidc/{provider}/callback',
    summary:
      'Where the provider sends the browser back (register `<CONNECT_PUBLIC_API_URL>/v1/auth/oidc/<name>/callback` with it): checks its answer, signs into, links or creates the account, and redirects to redirect_to with ?code= or ?error=',
    query: z.object({ code: z.string().optional(), state: z.string().optional() }),
    responses: {
      '302': 'To redirect_to, with a one-time code (60 s) or an OAuth error and error_description',
      '400':
        'No sign-in is in progress in this browser (finished, older than 10 minutes, or started elsewhere)',
      '404': 'No provider with this name is configured',
      '502': 'The provider cannot be reached',
    },
  },
  {
    method: 'get',
    path: '/v1/me/identities',
    summary: 'The caller’s identities at OpenID providers (never their tokens)',
    auth: true,
    response: z.array(identityResponse),
    examples: { response: [identityExample] },
    responses: { '200': 'The identities', '401': 'No or bad access token' },
  },
  {
    method: 'delete',
    path: '/v1/me/identities/{provider}',
    summary: 'Unlink the caller’s identity at a provider, unless it is the only way left to sign in',
    auth: true,
    responses: {
      '204': 'Unlinked',
      '401': 'No or bad access token',
      '404': 'No identity at this provider is linked',
      '409': 'It is the last way to sign in: set a password or link another provider first',
    },
  },
];
