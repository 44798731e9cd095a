// Granting and revoking roles: the user_roles row changes, a RoleGranted / RoleRevoked event goes
// to the user's roles stream on the ledger (actor: the admin who did it; null: the system), and
// every process is told to forget the user's remembered roles, all while the transaction holds the
// user's row. The append commits just before the transaction; a failed append throws, so the
// change is not kept.
import { announceRolesChanged } from '@connect/auth';
import type { Database, KeyRing } from '@connect/db';
import { ROLE_GRANTED, ROLE_REVOKED, type RoleChange, rolesStream, type UserRole } from '@connect/domain';
import type { Ledger } from '@connect/ledger';
import type { Kysely, Transaction } from 'kysely';
import { accountEmails, userIdByEmail } from './accounts.ts';

export interface RoleDeps {
  db: Kysely<Database>;
  ledger: Ledger;
}

export interface RoleRequest {
  userId: string;
  role: UserRole;
  /** The admin granting or revoking; null for the system (the CLI). */
  by: string | null;
  /** The request's correlation id, kept in the entry's meta. */
  correlationId?: string;
}

export interface RoleReceipt {
  index: number;
  id: string;
  type: string;
  leafHash: string;
}

export type GrantOutcome =
  | { outcome: 'granted'; event: RoleReceipt }
  | { outcome: 'already-held' }
  | { outcome: 'no-user' };

export type RevokeOutcome =
  | { outcome: 'revoked'; event: RoleReceipt }
  | { outcome: 'not-held' }
  | { outcome: 'last-admin' }
  | { outcome: 'no-user' };

export function grantRole(deps: RoleDeps, request: RoleRequest): Promise<GrantOutcome> {
  return deps.db.transaction().execute(async (trx) => {
    if (!(await lockUser(trx, request.userId))) return { outcome: 'no-user' };
    const inserted = await trx
      .insertInto('user_roles')
      .values({ user_id: request.userId, role: request.role, granted_by: request.by })
      .onConflict((oc) => oc.columns(['user_id', 'role']).doNothing())
      .returning('role')
      .executeTakeFirst();
    if (!inserted) return { outcome: 'already-held' };
    const event = await recordChange(trx, deps.ledger, ROLE_GRANTED, request);
    return { outcome: 'granted', event };
  });
}

/** Revokes the role; the last admin's admin role stays (someone must be able to grant it again). */
export function revokeRole(deps: RoleDeps, request: RoleRequest): Promise<RevokeOutcome> {
  return deps.db.transaction().execute(async (trx) => {
    if (!(await lockUser(trx, request.userId))) return { outcome: 'no-user' };
    if (request.role === 'admin') {
      // Locks every admin's row, so two admins revoking each other cannot both succeed.
      const admins = await trx
        .selectFrom('user_roles')
        .select('user_id')
        .where('role', '=', 'admin')
        .forUpdate()
        .execute();
      if (admins.length === 1 && admins[0]?.user_id === request.userId) return { outcome: 'last-admin' };
    }
    const deleted = await trx
      .deleteFrom('user_roles')
      .where('user_id', '=', request.userId)
      .where('role', '=', request.role)
      .returning('role')
      .executeTakeFirst();
    if (!deleted) return { outcome: 'not-held' };
    const event = await recordChange(trx, deps.ledger, ROLE_REVOKED, request);
    return { outcome: 'revoked', event };
  });
}

/** Makes the user with this email an admin (already one: true too); false when there is none. */
export async function grantAdmin(deps: RoleDeps & { keys: KeyRing }, email: string): Promise<boolean> {
  const userId = await userIdByEmail(deps.db, accountEmails(deps), email);
  if (!userId) return false;
  return (await grantRole(deps, { userId, role: 'admin', by: null })).outcome !== 'no-user';
}

/** Holds the user's row for the transaction: one role change per user at a time, in ledger order. */
async function lockUser(trx: Transaction<Database>, userId: string): Promise<boolean> {
  const row = await trx
    .selectFrom('users')
    .select('id')
    .where('id', '=', userId)
    .forUpdate()
    .executeTakeFirst();
  return row !== undefined;
}

async function recordChange(
  trx: Transaction<Database>,
  ledger: Ledger,
  type: typeof ROLE_GRANTED | typeof ROLE_REVOKED,
  { userId, role, by, correlationId }: RoleRequest,
): Promise<RoleReceipt> {
  const data: RoleChange = { userId, role };
  const meta = correlationId ? { correlationId } : undefined;
  const result = await ledger.append({
    stream: rolesStream(userId),
    expectedVersion: 'any',
    actor: by,
    events: [{ type, data, ...(meta ? { meta } : {}) }],
  });
  if (result.outcome !== 'appended') throw new Error(`role append: ${result.outcome}`);
  await announceRolesChanged(trx, userId);
  const [entry] = result.entries;
  if (!entry) throw new Error('role append: no entry');
  return { index: entry.index, id: entry.id, type: entry.type, leafHash: entry.leafHash };
}
