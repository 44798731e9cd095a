// Supabase-like auth: signup, password and refresh-token grants, me, JWKS; sessions and logout in
// session-routes.ts, verification and recovery in recovery-routes.ts.
import { randomUUID } from 'node:crypto';
import { ACCESS_TOKEN_SECONDS, type Authenticate, type SessionGate, type TokenIssuer } from '@connect/auth';
import type { Database, UserEmails } from '@connect/db';
import { profileRegistered } from '@connect/domain';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import { enqueueAccountMail } from '@connect/notifier';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { authAttemptLimit } from '../rate-limits.ts';
import { bannedUntil, findUser, findUserByEmail, type User } from './accounts.ts';
import { createAccount } from './create-account.ts';
import { exchangeAppCode } from './oidc/flow.ts';
import { appCodeGrant } from './oidc/grant.ts';
import { hashPassword, needsRehash, UNKNOWN_USER_HASH, verifyPassword } from './passwords.ts';
import { profileRoutes } from './profile-routes.ts';
import { recoveryRoutes } from './recovery-routes.ts';
import { newRefreshToken } from './refresh-tokens.ts';
import { sessionRoutes } from './session-routes.ts';
import {
  DEFAULT_SESSION_LIFETIMES,
  rotateRefreshToken,
  type SessionLifetimes,
  startSession,
} from './sessions.ts';
import { FORM_BODY_LIMIT, noStore, parseForm, tokenEndpoint } from './token-endpoint.ts';

export interface AuthDeps {
  db: Kysely<Database>;
  ledger: Ledger;
  /** Users' addresses: found by their blind index, opened with the users' keys. */
  emails: UserEmails;
  tokens: TokenIssuer;
  authenticate: Authenticate;
  sessions: SessionGate;
  /** Attempts per minute and auth route, per client address and per account (the body's email). */
  authAttemptsPerMinute?: number;
  sessionLifetimes?: SessionLifetimes;
  /** The clock sessions are started, refreshed and ended by. */
  now?: () => Date;
}

const email = z.email().max(254);
const password = z.string().min(8, 'must be at least 8 characters').max(1024);

export const signupBody = z
  .object({ email, password, displayName: profileRegistered.shape.displayName })
  .strict();
export const tokenBody = z.discriminatedUnion('grant_type', [
  z.object({ grant_type: z.literal('password'), email, password: z.string().min(1).max(1024) }).strict(),
  z.object({ grant_type: z.literal('refresh_token'), refresh_token: z.string().min(1).max(200) }).strict(),
  appCodeGrant,
]);

const publicUser = (user: User) => ({
  id: user.id,
  email: user.email,
  displayName: user.displayName,
  isAdmin: user.isAdmin,
  roles: user.roles,
  emailVerified: user.emailVerified,
  avatarUrl: user.avatarUrl,
});

export async function authRoutes(app: FastifyInstance, deps: AuthDeps): Promise<void> {
  const { db, ledger, emails, tokens, authenticate } = deps;
  const now = deps.now ?? (() => new Date());
  const lifetimes = deps.sessionLifetimes ?? DEFAULT_SESSION_LIFETIMES;
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT },
    parseForm,
  );
  // Shared by every instance (counted in PostgreSQL): per address and per account.
  const limited = { preHandler: authAttemptLimit(app, deps.authAttemptsPerMinute ?? 20, emails.index) };

  async function tokenResponse(user: User, sessionId: string, refreshToken: string) {
    return {
      access_token: await tokens.issueAccessToken({ userId: user.id, sessionId }),
      token_type: 'Bearer',
      expires_in: ACCESS_TOKEN_SECONDS,
      refresh_token: refreshToken,
      user: publicUser(user),
    };
  }

  /** Refuses a banned user every grant (password, refresh token, social sign-in). */
  async function refuseBanned(userId: string) {
    const until = await bannedUntil(db, userId, now());
    if (until)
      throw new HttpProblem(
        problem(403, `This account is banned until ${until.toISOString()}.`, undefined, 'forbidden'),
      );
  }

  /** Opens a session for the user, recording the client of `request` (shown in GET /v1/auth/sessions). */
  async function openSession(user: User, request?: FastifyRequest) {
    const sessionId = randomUUID();
    const refresh = newRefreshToken();
    const client = { userAgent: request?.headers['user-agent'], address: request?.ip };
    await startSession(
      db,
      { id: sessionId, userId: user.id, refreshHash: refresh.hash, ...client },
      now(),
      lifetimes,
    );
    return tokenResponse(user, sessionId, refresh.token);
  }

  app.post('/v1/auth/signup', { ...limited, onRequest: noStore }, async (request, reply) => {
    const body = parseWith(signupBody, request.body);
    const passwordHash = await hashPassword(body.password);
    // The account and the job mailing its verification link commit together.
    const user = await db.transaction().execute(async (trx) => {
      const created = await createAccount(trx, ledger, emails, {
        email: body.email,
        displayName: body.displayName,
        passwordHash,
      });
      if (created)
        await enqueueAccountMail(trx, emails.fields, [
          {
            purpose: 'verify-email',
            userId: created.id,
            emailIndex: await emails.index(created.email),
            requestedAt: now().toISOString(),
          },
        ]);
      return created;
    });
    if (!user) {
      throw new HttpProblem(
        problem(409, 'An account with this email exists; log in instead.', undefined, 'already-exists'),
      );
    }
    return reply.code(201).send(await openSession(user, request));
  });

  app.post('/v1/auth/token', { ...limited, ...tokenEndpoint }, async (request) => {
    const body = parseWith(tokenBody, request.body);
    if (body.grant_type === 'password') {
      const user = await findUserByEmail(db, emails, body.email);
      const valid = await verifyPassword(body.password, user?.passwordHash ?? (await UNKNOWN_USER_HASH));
      if (!user || !valid)
        throw new HttpProblem(
          problem(400, 'The email or the password is wrong.', undefined, 'invalid-grant'),
        );
      await refuseBanned(user.id);
      // An imported bcrypt hash (or an older cost) becomes today's scheme now that the password is known.
      if (user.passwordHash && needsRehash(user.passwordHash))
        await db
          .updateTable('users')
          .set({ password_hash: await hashPassword(body.password) })
          .where('id', '=', user.id)
          .where('password_hash', '=', user.passwordHash)
          .execute();
      return openSession(user, request);
    }
    if (body.grant_type === 'authorization_code') {
      const grant = await exchangeAppCode(db, body.code, body.redirect_uri, now());
      const user = grant && (await findUser(db, emails, grant.userId));
      if (!user)
        throw new HttpProblem(
          problem(
            400,
            'The code is unknown, expired or already used; sign in again.',
            undefined,
            'invalid-grant',
          ),
        );
      await refuseBanned(user.id);
      return openSession(user, request);
    }
    const rotation = await rotateRefreshToken(db, emails, body.refresh_token, now(), lifetimes);
    if (rotation.outcome === 'reused') {
      deps.sessions.forget(rotation.sessionId);
      throw new HttpProblem(
        problem(
          400,
          'This refresh token was already used; the session is ended. Log in again.',
          undefined,
          'invalid-grant',
        ),
      );
    }
    if (rotation.outcome === 'expired') {
      deps.sessions.forget(rotation.sessionId);
      throw new HttpProblem(
        problem(400, 'This session has timed out; log in again.', undefined, 'session-expired'),
      );
    }
    if (rotation.outcome === 'invalid')
      throw new HttpProblem(
        problem(400, 'The refresh token is invalid or expired.', undefined, 'invalid-grant'),
      );
    await refuseBanned(rotation.user.id);
    return tokenResponse(rotation.user, rotation.sessionId, rotation.refreshToken);
  });

  app.get('/v1/auth/me', async (request) => {
    const caller = await authenticate(request);
    const user = await findUser(db, emails, caller.userId);
    if (!user) throw new HttpProblem(problem(401, 'This account no longer exists.'));
    return publicUser(user);
  });

  app.get('/.well-known/jwks.json', async () => tokens.jwks);

  await app.register(sessionRoutes, { db, authenticate, sessions: deps.sessions, now });
  await app.register(recoveryRoutes, {
    db,
    ledger,
    emails,
    authenticate,
    sessions: deps.sessions,
    now,
    publicUser,
    limited,
  });
  await app.register(profileRoutes, { db, ledger, emails, authenticate, publicUser });
}
