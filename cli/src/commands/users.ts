import { grantRole, revokeRole, userIdByEmail } from '@connect/command';
import { loadConfig, openDatabase } from '@connect/db';
import { type UserRole, userRoleSchema } from '@connect/domain';
import { openLedgerRuntime } from '@connect/ledger';

const USAGE =
  'usage: connect users grant-role EMAIL ROLE | revoke-role EMAIL ROLE | grant-admin EMAIL (ROLE: admin, auditor)';

/**
 * connect users grant-role|revoke-role EMAIL ROLE (grant-admin EMAIL: grant-role EMAIL admin). The
 * change is recorded in the ledger with the system as its actor, and applies to the user's open
 * sessions at once.
 */
export async function usersCommand(args: string[]): Promise<number> {
  const [sub, email, roleName] = args;
  const role = sub === 'grant-admin' ? 'admin' : roleName;
  const parsed = userRoleSchema.safeParse(role);
  const known = sub === 'grant-admin' || sub === 'grant-role' || sub === 'revoke-role';
  if (!known || !email || !parsed.success || (sub === 'grant-admin' && roleName !== undefined)) {
    console.error(`connect: ${USAGE}`);
    return 2;
  }
  const config = loadConfig(process.env);
  // Opened here so a missing database is refused, not created; the runtime then joins it.
  const database = await openDatabase(config, { create: false });
  const runtime = await openLedgerRuntime({ ...config, databaseUrl: database.url }).catch(async (error) => {
    await database.close();
    throw error;
  });
  try {
    const deps = { db: runtime.database.db, ledger: runtime.ledger };
    const userId = await userIdByEmail(deps.db, email);
    if (!userId) {
      console.error(`connect: no user has the email ${email}`);
      return 1;
    }
    // Awaited here, so the runtime closes after the change, not before.
    return sub === 'revoke-role'
      ? await revoke(deps, email, userId, parsed.data)
      : await grant(deps, email, userId, parsed.data);
  } finally {
    await runtime.close();
    await database.close();
  }
}

type Deps = Parameters<typeof grantRole>[0];

async function grant(deps: Deps, email: string, userId: string, role: UserRole): Promise<number> {
  const result = await grantRole(deps, { userId, role, by: null });
  if (result.outcome === 'no-user') {
    console.error(`connect: no user has the email ${email}`);
    return 1;
  }
  if (result.outcome === 'already-held') console.log(`${email} is already ${article(role)}`);
  else console.log(`${email} is now ${article(role)} (ledger entry ${result.event.index})`);
  return 0;
}

async function revoke(deps: Deps, email: string, userId: string, role: UserRole): Promise<number> {
  const result = await revokeRole(deps, { userId, role, by: null });
  switch (result.outcome) {
    case 'revoked':
      console.log(`${email} is no longer ${article(role)} (ledger entry ${result.event.index})`);
      return 0;
    case 'not-held':
      console.error(`connect: ${email} is not ${article(role)}`);
      return 1;
    case 'last-admin':
      console.error(`connect: ${email} is the last admin; grant the admin role to someone else first`);
      return 1;
    default:
      console.error(`connect: no user has the email ${email}`);
      return 1;
  }
}

const article = (role: UserRole) => (role === 'admin' ? 'an admin' : 'an auditor');
