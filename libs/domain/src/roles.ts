// Roles a user holds beyond being a party: granted and revoked on the ledger, in a stream per user,
// so who held authority when is verifiable.
import { z } from 'zod';

/** admin: manages the service (types, webhooks, roles); auditor: reads everything, acts on nothing. */
export const USER_ROLES = ['admin', 'auditor'] as const;
export const userRoleSchema = z.enum(USER_ROLES);
export type UserRole = z.infer<typeof userRoleSchema>;

const ROLES_PREFIX = 'roles-';
export const rolesStream = (userId: string) => `${ROLES_PREFIX}${userId}`;
/** Every roles stream, as a LIKE pattern. */
export const ROLE_STREAMS = rolesStream('%');
/** The user a roles stream belongs to; undefined for any other stream. */
export const rolesUserOf = (stream: string): string | undefined =>
  stream.startsWith(ROLES_PREFIX) ? stream.slice(ROLES_PREFIX.length) : undefined;

export const ROLE_GRANTED = 'RoleGranted';
export const ROLE_REVOKED = 'RoleRevoked';
/** The data of RoleGranted and RoleRevoked; the entry's actor is who did it (null: the system). */
export const roleChange = z.object({ userId: z.uuid(), role: userRoleSchema }).strict();
export type RoleChange = z.infer<typeof roleChange>;

/** Whoever may read every commitment, entry and receipt (and run the audit). */
export const readsEverything = (roles: readonly UserRole[]): boolean =>
  roles.includes('admin') || roles.includes('auditor');
