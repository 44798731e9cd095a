// PATCH /v1/me: a user changes their display name or picture. The change is a ProfileUpdated event
// in the user's profile stream (so names stay verifiable in receipts), holding the whole profile
// after it, and the account row follows. Two changes of one profile are serialised on the account
// row (locked until the event is appended and the row updated), so the row and the stream agree on
// the last; the append carries the stream's version, and a conflict with a writer that does not
// take that lock is decided again on the new version (a few tries), then answered 409 `busy`.
import type { Authenticate } from '@connect/auth';
import type { Database, UserEmails } from '@connect/db';
import {
  avatarUrl,
  PROFILE_UPDATED,
  type ProfileUpdated,
  profileRegistered,
  profileStream,
} from '@connect/domain';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type { Kysely, Transaction } from 'kysely';
import { z } from 'zod';
import { openUser, type User, userRoles } from './accounts.ts';

export interface ProfileRouteDeps {
  db: Kysely<Database>;
  ledger: Ledger;
  emails: UserEmails;
  authenticate: Authenticate;
  /** The user object of auth responses. */
  publicUser: (user: User) => object;
}

export const profileBody = z
  .object({
    displayName: profileRegistered.shape.displayName.optional(),
    avatarUrl: avatarUrl
      .nullable()
      .optional()
      .meta({ description: 'an https URL; null removes the picture' }),
  })
  .strict()
  .refine((body) => body.displayName !== undefined || body.avatarUrl !== undefined, {
    message: 'send displayName, avatarUrl or both',
  });
export type ProfileChange = z.infer<typeof profileBody>;

const APPEND_TRIES = 3;

export async function profileRoutes(app: FastifyInstance, deps: ProfileRouteDeps): Promise<void> {
  app.patch('/v1/me', async (request) => {
    const caller = await deps.authenticate(request);
    const change = parseWith(profileBody, request.body);
    return deps.publicUser(
      await updateProfile(deps.db, deps.ledger, deps.emails, caller.userId, change, {
        correlationId: request.correlationId,
      }),
    );
  });
}

/** Applies the change to the user's profile: a ProfileUpdated event, then the account row; nothing when it changes nothing. */
export async function updateProfile(
  db: Kysely<Database>,
  ledger: Ledger,
  emails: UserEmails,
  userId: string,
  change: ProfileChange,
  meta?: { correlationId: string },
): Promise<User> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('users')
      .selectAll()
      .select(userRoles)
      .where('id', '=', userId)
      .forUpdate()
      .executeTakeFirst();
    if (!row) throw new HttpProblem(problem(401, 'This account no longer exists.'));
    const profile: ProfileUpdated = {
      userId,
      displayName: change.displayName ?? row.display_name,
      avatarUrl: change.avatarUrl === undefined ? row.avatar_url : change.avatarUrl,
    };
    if (profile.displayName === row.display_name && profile.avatarUrl === row.avatar_url)
      return openUser(emails, row);
    await appendProfileUpdated(trx, ledger, profile, meta);
    const updated = await trx
      .updateTable('users')
      .set({ display_name: profile.displayName, avatar_url: profile.avatarUrl })
      .where('id', '=', userId)
      .returningAll()
      .executeTakeFirstOrThrow();
    return openUser(emails, { ...updated, roles: row.roles });
  });
}

async function appendProfileUpdated(
  trx: Transaction<Database>,
  ledger: Ledger,
  profile: ProfileUpdated,
  meta?: { correlationId: string },
): Promise<void> {
  const stream = profileStream(profile.userId);
  for (let attempt = 1; attempt <= APPEND_TRIES; attempt++) {
    const last = await trx
      .selectFrom('ledger_entries')
      .select((eb) => eb.fn.max('version').as('version'))
      .where('stream', '=', stream)
      .executeTakeFirst();
    const version = last?.version == null ? undefined : Number(last.version);
    const appended = await ledger.append({
      stream,
      expectedVersion: version ?? 'no_stream',
      actor: profile.userId,
      events: [{ type: PROFILE_UPDATED, data: profile, ...(meta ? { meta } : {}) }],
    });
    if (appended.outcome === 'appended') return;
    if (appended.outcome !== 'version_conflict') throw new Error(`profile append: ${appended.outcome}`);
  }
  throw new HttpProblem(
    problem(409, 'The profile changed meanwhile, again and again; try again.', undefined, 'busy'),
  );
}
