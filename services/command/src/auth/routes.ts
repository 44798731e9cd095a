// Supabase-like auth: signup, password and refresh-token grants, logout, me, JWKS.
import { randomUUID } from 'node:crypto';
import { ACCESS_TOKEN_SECONDS, type Authenticate, type SessionGate, type TokenIssuer } from '@connect/auth';
import type { Database } from '@connect/db';
import { PROFILE_REGISTERED, profileRegistered, profileStream } from '@connect/domain';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { findUser, findUserByEmail, insertUser, type User } from './accounts.ts';
import { hashPassword, UNKNOWN_USER_HASH, verifyPassword } from './passwords.ts';
import { newRefreshToken } from './refresh-tokens.ts';
import {
  DEFAULT_SESSION_LIFETIMES,
  revokeSession,
  rotateRefreshToken,
  type SessionLifetimes,
  startSession,
} from './sessions.ts';

export interface AuthDeps {
  db: Kysely<Database>;
  ledger: Ledger;
  tokens: TokenIssuer;
  authenticate: Authenticate;
  sessions: SessionGate;
  /** Attempts per client address and minute for signup and login. */
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
]);

const publicUser = (user: User) => ({
  id: user.id,
  email: user.email,
  displayName: user.displayName,
  isAdmin: user.isAdmin,
});

export async function authRoutes(app: FastifyInstance, deps: AuthDeps): Promise<void> {
  const { db, ledger, tokens, authenticate } = deps;
  const now = deps.now ?? (() => new Date());
  const lifetimes = deps.sessionLifetimes ?? DEFAULT_SESSION_LIFETIMES;
  await app.register(rateLimit, { global: false });
  const limited = {
    config: { rateLimit: { max: deps.authAttemptsPerMinute ?? 20, timeWindow: '1 minute' } },
  };

  async function tokenResponse(user: User, sessionId: string, refreshToken: string) {
    return {
      access_token: await tokens.issueAccessToken({ userId: user.id, sessionId, isAdmin: user.isAdmin }),
      token_type: 'Bearer',
      expires_in: ACCESS_TOKEN_SECONDS,
      refresh_token: refreshToken,
      user: publicUser(user),
    };
  }

  async function openSession(user: User) {
    const sessionId = randomUUID();
    const refresh = newRefreshToken();
    await startSession(db, { id: sessionId, userId: user.id, refreshHash: refresh.hash }, now(), lifetimes);
    return tokenResponse(user, sessionId, refresh.token);
  }

  app.post('/v1/auth/signup', limited, async (request, reply) => {
    const body = parseWith(signupBody, request.body);
    const user: User = {
      id: randomUUID(),
      email: body.email.toLowerCase(),
      displayName: body.displayName,
      isAdmin: false,
    };
    const passwordHash = await hashPassword(body.password);
    // The account and its ledger profile go together: if the profile cannot be appended, no account.
    await db.transaction().execute(async (trx) => {
      if (!(await insertUser(trx, { ...user, passwordHash }))) {
        throw new HttpProblem(
          problem(409, 'An account with this email exists; log in instead.', undefined, 'already-exists'),
        );
      }
      const profile = await ledger.append({
        stream: profileStream(user.id),
        expectedVersion: 'no_stream',
        actor: user.id,
        events: [{ type: PROFILE_REGISTERED, data: { userId: user.id, displayName: user.displayName } }],
      });
      if (profile.outcome !== 'appended') throw new Error(`profile append: ${profile.outcome}`);
    });
    return reply.code(201).send(await openSession(user));
  });

  app.post('/v1/auth/token', limited, async (request) => {
    const body = parseWith(tokenBody, request.body);
    if (body.grant_type === 'password') {
      const user = await findUserByEmail(db, body.email);
      const valid = await verifyPassword(body.password, user?.passwordHash ?? (await UNKNOWN_USER_HASH));
      if (!user || !valid)
        throw new HttpProblem(
          problem(400, 'The email or the password is wrong.', undefined, 'invalid-grant'),
        );
      return openSession(user);
    }
    const rotation = await rotateRefreshToken(db, body.refresh_token, now(), lifetimes);
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
        problem(401, 'This session has timed out; log in again.', undefined, 'session-expired'),
      );
    }
    if (rotation.outcome === 'invalid')
      throw new HttpProblem(
        problem(400, 'The refresh token is invalid or expired.', undefined, 'invalid-grant'),
      );
    return tokenResponse(rotation.user, rotation.sessionId, rotation.refreshToken);
  });

  app.post('/v1/auth/logout', async (request, reply) => {
    const caller = await authenticate(request);
    await revokeSession(db, caller.sessionId, now());
    deps.sessions.forget(caller.sessionId);
    return reply.code(204).send();
  });

  app.get('/v1/auth/me', async (request) => {
    const caller = await authenticate(request);
    const user = await findUser(db, caller.userId);
    if (!user) throw new HttpProblem(problem(401, 'This account no longer exists.'));
    return publicUser(user);
  });

  app.get('/.well-known/jwks.json', async () => tokens.jwks);
}
