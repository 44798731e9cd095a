// What decide needs to know about the people a command concerns (the domain reads no database):
// whether their email is verified and which roles they hold, read as the command runs.
import type { Database } from '@connect/db';
import type { CommitmentCommand, PersonFacts, UserRole } from '@connect/domain';
import { type Kysely, sql } from 'kysely';

/** The actor and, for an invitation, the invitee. */
export function peopleOf(command: CommitmentCommand, actor: string | null): string[] {
  const ids = actor === null ? [] : [actor];
  if (command.action === 'invite' && command.userId !== actor) ids.push(command.userId);
  return ids;
}

export async function peopleFacts(
  db: Kysely<Database>,
  userIds: string[],
): Promise<ReadonlyMap<string, PersonFacts>> {
  if (userIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('users')
    .select([
      'id',
      'email_verified_at',
      sql<
        UserRole[]
      >`array(select role from user_roles where user_roles.user_id = users.id order by role)`.as('roles'),
    ])
    .where('id', 'in', userIds)
    .execute();
  return new Map(
    rows.map((row) => [row.id, { emailVerified: row.email_verified_at !== null, roles: row.roles }]),
  );
}
