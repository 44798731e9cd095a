// What decide needs to know about the people a command concerns (the domain reads no database).
// The actor's roles are their session's: read with it, and forgotten by every process the moment
// they change (session-gate.ts). The database is read only where a rule needs more: whether the
// creator's address is verified, and the invitee of an invitation, who must exist.
import { compiledOnce, type Database, groupedCalls, prepared } from '@connect/db';
import type { CommitmentCommand, PersonFacts, UserRole } from '@connect/domain';
import type { Kysely } from 'kysely';
import { userRoles } from '../auth/accounts.ts';

/** Who acts: a person with their session's roles (undefined when not known), or the service (null). */
export interface Acting {
  userId: string | null;
  roles?: readonly UserRole[];
}

/** The facts of the actor and, for an invitation, of the invitee (absent: no such user, or erased). */
export async function peopleFacts(
  db: Kysely<Database>,
  command: CommitmentCommand,
  actor: Acting,
): Promise<ReadonlyMap<string, PersonFacts>> {
  const facts = new Map<string, PersonFacts>();
  const toRead: string[] = [];
  if (actor.userId !== null) {
    if (command.action === 'create' || actor.roles === undefined) toRead.push(actor.userId);
    else facts.set(actor.userId, { roles: actor.roles });
  }
  if (command.action === 'invite' && command.userId !== actor.userId) toRead.push(command.userId);
  for (const [id, read] of await readFacts(db, toRead)) facts.set(id, read);
  return facts;
}

/** Whether each user's address is verified, and their roles; users not found (or erased) are left out. */
export async function readFacts(
  db: Kysely<Database>,
  userIds: readonly string[],
): Promise<ReadonlyMap<string, PersonFacts>> {
  const read = await Promise.all(userIds.map((userId) => readPerson(db, userId)));
  return new Map(
    read.flatMap((row) =>
      row ? [[row.id, { emailVerified: row.email_verified_at !== null, roles: row.roles }] as const] : [],
    ),
  );
}

interface PersonRow {
  id: string;
  email_verified_at: Date | null;
  roles: UserRole[];
}

/** Users' rows by id, in one statement (prepared: nearly every create and invitation runs it). */
const personRows = compiledOnce(
  (db: Kysely<Database>, userIds: readonly string[]) =>
    db
      .selectFrom('users')
      .select(['id', 'email_verified_at', userRoles])
      .where((eb) => eb('id', '=', eb.fn.any(eb.val(userIds))))
      .where('erased_at', 'is', null),
  (query) => prepared('people-by-id', query),
);

/**
 * Nearly every create and invitation reads one person: the reads asked for while one statement
 * runs go together in the next (groupedCalls), per database, so a burst of commands reads its
 * people in a few statements rather than one each.
 */
const groupedReads = new WeakMap<Kysely<Database>, (userId: string) => Promise<PersonRow | undefined>>();

function readPerson(db: Kysely<Database>, userId: string): Promise<PersonRow | undefined> {
  let read = groupedReads.get(db);
  if (!read) {
    // Every id is a checked UUID, so a group fails only as a whole (the database): all its callers
    // are told at once rather than each retried alone against a struggling pool.
    read = groupedCalls(async (userIds: readonly string[]) => {
      const rows = await personRows(db, [...new Set(userIds)]);
      const byId = new Map(rows.map((row) => [row.id, row]));
      return userIds.map((userId) => byId.get(userId));
    });
    groupedReads.set(db, read);
  }
  return read(userId);
}
