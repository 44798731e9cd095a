// Proving and recovering an account by its email: verifying the address, recovering a forgotten
// password, changing the password, moving the account to another address. Every mail goes through
// the notifier's queue: a job added in the request's transaction, whose worker makes the token and
// sends it (services/notifier/src/email/account-mail.ts), so the mail survives a crash and the
// request never holds a token.
import type { Authenticate, SessionGate } from '@connect/auth';
import { type Database, normalizeEmail, type UserEmails } from '@connect/db';
import { badRequest, HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import { enqueueAccountMail } from '@connect/notifier';
import type { FastifyInstance, FastifyRequest, RouteShorthandOptions } from 'fastify';
import type { Kysely, Transaction } from 'kysely';
import { z } from 'zod';
import { claimEmailInvitations } from '../commitments/email-invitations.ts';
import { invalidToken, useAccountToken, voidAccountTokens } from './account-tokens.ts';
import { findUser, findUserByEmail, openUser, type User, userRoles } from './accounts.ts';
import { hashPassword, UNKNOWN_USER_HASH, verifyPassword } from './passwords.ts';
import { endSessions } from './sessions.ts';

export interface RecoveryRouteDeps {
  db: Kysely<Database>;
  /** Invitations by email to an address become the account's once it is verified. */
  ledger: Ledger;
  /** Users' addresses: found by their blind index, opened with the users' keys. */
  emails: UserEmails;
  authenticate: Authenticate;
  sessions: SessionGate;
  now: () => Date;
  /** The user object of auth responses. */
  publicUser: (user: User) => object;
  /** The rate limit of these routes (per client address and per account). */
  limited: RouteShorthandOptions;
}

const email = z.email().max(254);
const token = z.string().min(1).max(200);
const newPassword = z.string().min(8, 'must be at least 8 characters').max(1024);

export const verifyBody = z.object({ token }).strict();
export const recoverBody = z.object({ email }).strict();
export const resetBody = z.object({ token, password: newPassword }).strict();
export const passwordBody = z.object({ currentPassword: z.string().min(1).max(1024), newPassword }).strict();
export const emailBody = z.object({ email, password: z.string().min(1).max(1024) }).strict();
export const accepted = z.object({ message: z.string() });

/** What /recover answers, whether or not the address has an account. */
export const RECOVER_ANSWER = {
  message:
    'If an account has this address, a link to choose a new password is on its way. It works for an hour.',
};
export const EMAIL_CHANGE_ANSWER = {
  message:
    'A link is on its way to the new address; the change applies once it is followed (within an hour).',
};

/** Tokens a new password makes pointless or dangerous: a pending recovery, a pending move. */
const VOIDED_BY_NEW_PASSWORD = ['recover', 'change-email'] as const;

export async function recoveryRoutes(app: FastifyInstance, deps: RecoveryRouteDeps): Promise<void> {
  const { db, emails, authenticate, now, limited } = deps;
  const claimInvitations = (request: FastifyRequest, user: { id: string; emailIndex: Uint8Array }) =>
    claimEmailInvitations(db, deps.ledger, user, { correlationId: request.correlationId, log: request.log });

  /** Checks the password of a signed-in user; a wrong one is a 400 naming `field`. */
  async function checkPassword(userId: string, password: string, field: string): Promise<User> {
    const row = await db
      .selectFrom('users')
      .selectAll()
      .select(userRoles)
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!row) throw new HttpProblem(problem(401, 'This account no longer exists.'));
    // An account with no password (social login only) has none to match.
    const valid = await verifyPassword(password, row.password_hash ?? (await UNKNOWN_USER_HASH));
    if (!row.password_hash || !valid)
      throw badRequest([{ path: field, message: 'is not the password of this account' }]);
    return openUser(emails, row);
  }

  /** Ends sessions in the transaction `work` runs in, and forgets them here once it committed. */
  async function withEndedSessions<T>(
    work: (trx: Transaction<Database>) => Promise<{ result: T; ended: string[] }>,
  ): Promise<T> {
    const { result, ended } = await db.transaction().execute(work);
    for (const id of ended) deps.sessions.forget(id);
    return result;
  }

  app.post('/v1/auth/verify', limited, async (request) => {
    const body = parseWith(verifyBody, request.body);
    const at = now();
    const userId = await db.transaction().execute(async (trx) => {
      const used = await useAccountToken(
        trx,
        emails.fields,
        body.token,
        ['verify-email', 'change-email'],
        at,
      );
      if (!used?.emailIndex || used.email === undefined) throw invalidToken();
      if (used.purpose === 'verify-email') {
        // A link to an address the account has since left verifies nothing.
        const verified = await trx
          .updateTable('users')
          .set({ email_verified_at: at })
          .where('id', '=', used.userId)
          .where('email_index', '=', used.emailIndex)
          .returning('id')
          .executeTakeFirst();
        if (!verified) throw invalidToken();
        return used.userId;
      }
      const taken = await trx
        .selectFrom('users')
        .select('id')
        .where('email_index', '=', used.emailIndex)
        .where('id', '!=', used.userId)
        .executeTakeFirst();
      if (taken)
        throw new HttpProblem(
          problem(409, 'Another account has this address by now.', undefined, 'already-exists'),
        );
      await trx
        .updateTable('users')
        .set({ ...(await emails.columns(used.userId, used.email)), email_verified_at: at })
        .where('id', '=', used.userId)
        .execute();
      await voidAccountTokens(trx, used.userId, ['change-email', 'verify-email'], at);
      return used.userId;
    });
    const user = await findUser(db, emails, userId);
    if (!user) throw invalidToken();
    await claimInvitations(request, { id: user.id, emailIndex: await emails.index(user.email) });
    return { user: deps.publicUser(user) };
  });

  // The same answer, after the same work (one job added), whether or not the address has an
  // account: the worker looks it up.
  app.post('/v1/auth/recover', limited, async (request, reply) => {
    const body = parseWith(recoverBody, request.body);
    await enqueueAccountMail(db, emails.fields, [
      { purpose: 'recover', emailIndex: await emails.index(body.email), requestedAt: now().toISOString() },
    ]);
    return reply.code(202).send(RECOVER_ANSWER);
  });

  app.post('/v1/auth/reset', limited, async (request, reply) => {
    const body = parseWith(resetBody, request.body);
    const passwordHash = await hashPassword(body.password);
    const at = now();
    const verified = await withEndedSessions(async (trx) => {
      const used = await useAccountToken(trx, emails.fields, body.token, ['recover'], at);
      if (!used) throw invalidToken();
      const user = await trx
        .selectFrom('users')
        .select(['email_index', 'email_verified_at'])
        .where('id', '=', used.userId)
        .executeTakeFirstOrThrow();
      // Following the link proved the person reads the address it went to.
      const emailIndex = user.email_index;
      const proved =
        emailIndex !== null && used.emailIndex !== null && Buffer.from(emailIndex).equals(used.emailIndex);
      await trx
        .updateTable('users')
        .set({
          password_hash: passwordHash,
          email_verified_at: user.email_verified_at ?? (proved ? at : null),
        })
        .where('id', '=', used.userId)
        .execute();
      await voidAccountTokens(trx, used.userId, VOIDED_BY_NEW_PASSWORD, at);
      const ended = await endSessions(trx, { userId: used.userId }, at);
      const newlyVerified = proved && !user.email_verified_at;
      return { result: newlyVerified && emailIndex ? { id: used.userId, emailIndex } : undefined, ended };
    });
    if (verified) await claimInvitations(request, verified);
    return reply.code(204).send();
  });

  app.post('/v1/auth/password', limited, async (request, reply) => {
    const caller = await authenticate(request);
    const body = parseWith(passwordBody, request.body);
    await checkPassword(caller.userId, body.currentPassword, 'body.currentPassword');
    const passwordHash = await hashPassword(body.newPassword);
    const at = now();
    await withEndedSessions(async (trx) => {
      await trx
        .updateTable('users')
        .set({ password_hash: passwordHash })
        .where('id', '=', caller.userId)
        .execute();
      await voidAccountTokens(trx, caller.userId, VOIDED_BY_NEW_PASSWORD, at);
      const ended = await endSessions(trx, { userId: caller.userId, except: caller.sessionId }, at);
      return { result: undefined, ended };
    });
    return reply.code(204).send();
  });

  app.post('/v1/auth/email', limited, async (request, reply) => {
    const caller = await authenticate(request);
    const body = parseWith(emailBody, request.body);
    const user = await checkPassword(caller.userId, body.password, 'body.password');
    const address = normalizeEmail(body.email);
    if (address === user.email)
      throw badRequest([{ path: 'body.email', message: 'is already your address' }]);
    if (await findUserByEmail(db, emails, address))
      throw new HttpProblem(problem(409, 'Another account has this address.', undefined, 'already-exists'));
    const requestedAt = now().toISOString();
    const emailIndex = await emails.index(address);
    await db.transaction().execute((trx) =>
      enqueueAccountMail(trx, emails.fields, [
        { purpose: 'change-email', userId: user.id, emailIndex, to: address, requestedAt },
        { purpose: 'email-change-notice', userId: user.id, to: user.email, newEmail: address, requestedAt },
      ]),
    );
    return reply.code(202).send(EMAIL_CHANGE_ANSWER);
  });
}
