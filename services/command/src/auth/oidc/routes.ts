// Social login through OpenID Connect (authorization code flow with PKCE, state and nonce):
// GET …/start sends the browser to the provider, GET …/callback checks its answer with
// openid-client, signs into (or creates, or links) an account and sends the browser back to the
// app with a one-time code, which the app exchanges at POST /v1/auth/token
// (grant_type=authorization_code). Linked identities are listed and unlinked under /v1/me.
// Nothing here logs or answers with a token, a code or a client secret.
import type { Authenticate } from '@connect/auth';
import type { Database, OidcProviderConfig, UserEmails } from '@connect/db';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import * as client from 'openid-client';
import { z } from 'zod';
import {
  issueAppCode,
  PENDING_LOGIN_SECONDS,
  startPendingLogin,
  takePendingLogin,
  withoutQuery,
} from './flow.ts';
import { type IdentityClaims, listIdentities, signInWithIdentity, unlinkIdentity } from './identities.ts';
import { type OidcProvider, oidcProviders } from './providers.ts';

export interface OidcSettings {
  /** CONNECT_OIDC_<NAME>_*. */
  providers: readonly OidcProviderConfig[];
  /** CONNECT_AUTH_REDIRECT_URLS: where a login may send the browser back to. */
  redirectUrls: readonly string[];
  /** CONNECT_PUBLIC_API_URL: the base of the callback URL registered with each provider. */
  publicApiUrl: string;
}

export interface OidcDeps {
  db: Kysely<Database>;
  ledger: Ledger;
  /** Users' addresses: found by their blind index, opened with the users' keys. */
  emails: UserEmails;
  authenticate: Authenticate;
  /** Unset: no provider is configured (every provider is a 404). */
  oidc?: OidcSettings;
  now?: () => Date;
}

export const providerParams = z.object({ provider: z.string().min(1).max(64) });
export const startQuery = z.object({
  redirect_to: z.string().min(1).max(2000).meta({
    description:
      'Where to send the browser back to: one of CONNECT_AUTH_REDIRECT_URLS (its query may differ)',
  }),
  state: z
    .string()
    .min(1)
    .max(500)
    .optional()
    .meta({ description: 'Given back unchanged with the code or the error, for the app’s own check' }),
});
export const identityResponse = z.object({
  provider: z.string(),
  email: z.string().nullable(),
  createdAt: z.iso.datetime(),
  lastSignInAt: z.iso.datetime(),
});

const cookieName = (provider: OidcProvider) => `connect_oidc_${provider.name}`;

function readCookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

const titleOf = (provider: OidcProvider) => provider.name.charAt(0).toUpperCase() + provider.name.slice(1);

/** What went wrong with the provider's answer, in OAuth's error words, for the app and for the log. */
function failureOf(
  error: unknown,
  provider: OidcProvider,
): { error: string; description: string; code: string } {
  const title = titleOf(provider);
  if (error instanceof client.AuthorizationResponseError) {
    return {
      error: /^[\x20-\x7e]{1,64}$/.test(error.error) ? error.error : 'access_denied',
      description: error.error_description ?? `${title} did not sign you in.`,
      code: error.code,
    };
  }
  if (error instanceof client.ResponseBodyError) {
    return {
      error: 'access_denied',
      description: `${title} refused to complete the sign-in (${error.error}): the answer was already used, has expired or does not belong to this sign-in. Start again.`,
      code: `${error.code}:${error.error}`,
    };
  }
  if (error instanceof client.ClientError) {
    const reason = error.cause instanceof Error ? error.cause.message : error.message;
    if (/"state"/.test(reason)) {
      return {
        error: 'invalid_request',
        description: `The answer from ${title} does not belong to the sign-in started in this browser (its state does not match). Start again.`,
        code: error.code ?? 'state',
      };
    }
    return {
      error: 'access_denied',
      description: `The answer from ${title} failed verification: ${reason}. Start again.`,
      code: error.code ?? 'client-error',
    };
  }
  return {
    error: 'server_error',
    description: `${title} could not be reached to complete the sign-in. Try again later.`,
    code: error instanceof Error ? error.name : 'unknown',
  };
}

export async function oidcRoutes(app: FastifyInstance, deps: OidcDeps): Promise<void> {
  const { db, ledger, emails, authenticate } = deps;
  const now = deps.now ?? (() => new Date());
  const providers = oidcProviders(deps.oidc?.providers ?? [], deps.oidc?.publicApiUrl ?? '');
  const allowed = new Set((deps.oidc?.redirectUrls ?? []).map((url) => withoutQuery(new URL(url))));

  function providerOf(request: FastifyRequest): OidcProvider {
    const { provider: name } = parseWith(providerParams, request.params, 'path');
    const provider = providers.find(name);
    if (!provider) throw new HttpProblem(problem(404, `No sign-in provider is called "${name}".`));
    return provider;
  }

  async function configurationOf(provider: OidcProvider, request: FastifyRequest) {
    try {
      return await provider.configuration();
    } catch (error) {
      request.log.warn(
        { provider: provider.name, reason: error instanceof Error ? error.message : String(error) },
        'oidc discovery failed',
      );
      throw new HttpProblem(
        problem(502, `${titleOf(provider)} cannot be reached right now; try again later.`),
      );
    }
  }

  function cookie(provider: OidcProvider, request: FastifyRequest, value: string, maxAge: number) {
    const secure = provider.redirectUri.startsWith('https:') || request.protocol === 'https';
    return [
      `${cookieName(provider)}=${value}`,
      `Path=/v1/auth/oidc/${provider.name}/`,
      `Max-Age=${maxAge}`,
      'HttpOnly',
      'SameSite=Lax',
      ...(secure ? ['Secure'] : []),
    ].join('; ');
  }

  app.get('/v1/auth/oidc/:provider/start', async (request, reply) => {
    const provider = providerOf(request);
    const query = parseWith(startQuery, request.query, 'query');
    const redirectTo = URL.canParse(query.redirect_to) ? new URL(query.redirect_to) : new URL('invalid:');
    if (redirectTo.hash !== '' || !allowed.has(withoutQuery(redirectTo))) {
      throw new HttpProblem(
        problem(400, 'redirect_to is not a URL this service may send you back to.', [
          { path: 'query.redirect_to', message: 'must be one of the URLs in CONNECT_AUTH_REDIRECT_URLS' },
        ]),
      );
    }
    const configuration = await configurationOf(provider, request);
    const login = await startPendingLogin(
      db,
      { provider: provider.name, redirectTo: redirectTo.href, appState: query.state ?? null },
      now(),
    );
    const authorization = client.buildAuthorizationUrl(configuration, {
      redirect_uri: provider.redirectUri,
      scope: 'openid email profile',
      state: login.state,
      nonce: login.nonce,
      code_challenge: login.codeChallenge,
      code_challenge_method: 'S256',
    });
    return reply
      .header('set-cookie', cookie(provider, request, login.key, PENDING_LOGIN_SECONDS))
      .header('cache-control', 'no-store')
      .redirect(authorization.href, 302);
  });

  // The callback's query holds the provider's authorization code: its requests are logged without it.
  const withoutQueryInLog = {
    logSerializers: {
      req: (req: FastifyRequest) => ({ method: req.method, url: req.url.split('?')[0], host: req.host }),
    },
  };

  app.get('/v1/auth/oidc/:provider/callback', withoutQueryInLog, async (request, reply) => {
    const provider = providerOf(request);
    const key = readCookie(request, cookieName(provider));
    const login = key === undefined ? undefined : await takePendingLogin(db, key, provider.name, now());
    reply.header('set-cookie', cookie(provider, request, '', 0)).header('cache-control', 'no-store');
    if (!login) {
      throw new HttpProblem(
        problem(
          400,
          `No sign-in with ${titleOf(provider)} is in progress in this browser: it was finished already, took longer than ${PENDING_LOGIN_SECONDS / 60} minutes, or was started elsewhere. Start again.`,
          [{ path: 'query.state', message: 'no sign-in in progress for this browser' }],
        ),
      );
    }
    const back = (params: Record<string, string>) => {
      const target = new URL(login.redirectTo);
      for (const [name, value] of Object.entries(params)) target.searchParams.set(name, value);
      if (login.appState !== null) target.searchParams.set('state', login.appState);
      return reply.redirect(target.href, 302);
    };

    const configuration = await configurationOf(provider, request);
    const currentUrl = new URL(provider.redirectUri);
    currentUrl.search = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
    let claims: IdentityClaims | undefined;
    try {
      const tokens = await client.authorizationCodeGrant(configuration, currentUrl, {
        pkceCodeVerifier: login.codeVerifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      });
      const idToken = tokens.claims();
      // A provider that keeps profile claims out of the ID token gives them at its userinfo
      // endpoint, for the same subject.
      claims =
        idToken && idToken.email === undefined && configuration.serverMetadata().userinfo_endpoint
          ? {
              ...(await client.fetchUserInfo(configuration, tokens.access_token, idToken.sub)),
              sub: idToken.sub,
            }
          : idToken;
    } catch (error) {
      const failure = failureOf(error, provider);
      request.log.info(
        { provider: provider.name, failure: failure.code, error: failure.error },
        'oidc sign-in refused',
      );
      return back({ error: failure.error, error_description: failure.description });
    }
    if (!claims) return back({ error: 'server_error', error_description: 'The provider sent no ID token.' });

    const signIn = await signInWithIdentity(
      db,
      ledger,
      emails,
      { name: provider.name, title: titleOf(provider) },
      claims,
      now(),
    );
    if (signIn.outcome === 'refused') {
      request.log.info({ provider: provider.name }, 'oidc sign-in refused: account not linkable');
      return back({ error: 'access_denied', error_description: signIn.reason });
    }
    const code = await issueAppCode(
      db,
      {
        userId: signIn.userId,
        provider: provider.name,
        redirectTo: login.redirectTo,
        userAgent: request.headers['user-agent']?.slice(0, 500) ?? null,
        address: request.ip,
      },
      now(),
    );
    return back({ code });
  });

  app.get('/v1/me/identities', async (request) => {
    const caller = await authenticate(request);
    const identities = await listIdentities(db, emails.fields, caller.userId);
    return identities.map((identity) => ({
      provider: identity.provider,
      email: identity.email,
      createdAt: identity.createdAt.toISOString(),
      lastSignInAt: identity.lastSignInAt.toISOString(),
    }));
  });

  app.delete('/v1/me/identities/:provider', async (request, reply: FastifyReply) => {
    const caller = await authenticate(request);
    const { provider } = parseWith(providerParams, request.params, 'path');
    const outcome = await unlinkIdentity(db, caller.userId, provider);
    if (outcome === 'not-linked')
      throw new HttpProblem(problem(404, `No identity at "${provider}" is linked to this account.`));
    if (outcome === 'last-way-to-sign-in') {
      throw new HttpProblem(
        problem(
          409,
          `Signing in with ${provider} is the only way into this account; set a password or link another provider before unlinking it.`,
        ),
      );
    }
    return reply.code(204).send();
  });
}
