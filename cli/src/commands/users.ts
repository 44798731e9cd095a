import { eraseUser, grantRole, revokeRole, userIdByEmail } from '@connect/command';
import { emailIndex, isUuidText, loadConfig, openDatabase } from '@connect/db';
import { type UserRole, userRoleSchema } from '@connect/domain';
import { type LedgerRuntime, openLedgerRuntime } from '@connect/ledger';

const USAGE =
  'usage: connect users grant-role EMAIL ROLE | revoke-role EMAIL ROLE | grant-admin EMAIL (ROLE: admin, auditor) | erase EMAIL|ID';

/**
 * connect users grant-role|revoke-role EMAIL ROLE (grant-admin EMAIL: grant-role EMAIL admin). The
 * change is recorded in the ledger with the system as its actor, and applies to the user's open
 * sessions at once. connect users erase EMAIL|ID erases the user (see erase below).
 */
export async function usersCommand(args: string[]): Promise<number> {
  const [sub, email, roleName] = args;
  if (sub === 'erase') {
    if (!email || roleName !== undefined) {
      console.error(`connect: ${USAGE}`);
      return 2;
    }
    return withRuntime((runtime) => erase(runtime, email));
  }
  const role = sub === 'grant-admin' ? 'admin' : roleName;
  const parsed = userRoleSchema.safeParse(role);
  const known = sub === 'grant-admin' || sub === 'grant-role' || sub === 'revoke-role';
  if (!known || !email || !parsed.success || (sub === 'grant-admin' && roleName !== undefined)) {
    console.error(`connect: ${USAGE}`);
    return 2;
  }
  return withRuntime(async (runtime) => {
    const deps = { db: runtime.database.db, ledger: runtime.ledger };
    const userId = await userIdByEmail(deps.db, { index: emailIndex(runtime.keys) }, email);
    if (!userId) {
      console.error(`connect: no user has the email ${email}`);
      return 1;
    }
    return sub === 'revoke-role'
      ? revoke(deps, email, userId, parsed.data)
      : grant(deps, email, userId, parsed.data);
  });
}

/** Runs `work` with the ledger runtime, closed once `work` is done. */
async function withRuntime(work: (runtime: LedgerRuntime) => Promise<number>): Promise<number> {
  const config = loadConfig(process.env);
  // Opened here so a missing database is refused, not created; the runtime then joins it.
  const database = await openDatabase(config, { create: false });
  const runtime = await openLedgerRuntime({ ...config, databaseUrl: database.url }).catch(async (error) => {
    await database.close();
    throw error;
  });
  try {
    // Awaited here, so the runtime closes after the change, not before.
    return await work(runtime);
  } finally {
    await runtime.close();
    await database.close();
  }
}

/**
 * connect users erase EMAIL|ID: crypto-shreds the user (the system is the actor). Once erased, the
 * email is gone: a rerun after an interruption names the user by id, and finishes the erasure.
 */
async function erase(runtime: LedgerRuntime, who: string): Promise<number> {
  const { db, pool } = runtime.database;
  const userId = isUuidText(who)
    ? who.toLowerCase()
    : await userIdByEmail(db, { index: emailIndex(runtime.keys) }, who);
  if (!userId) {
    console.error(`connect: no user has the email ${who}`);
    return 1;
  }
  const erased = await eraseUser({ pool, db, ledger: runtime.ledger, keys: runtime.keys }, userId, {
    actor: null,
  });
  if (erased.outcome === 'no-user') {
    console.error(`connect: no user has the id ${userId}`);
    return 1;
  }
  console.log(`user ${userId} is erased (ledger entry ${erased.event.index})`);
  return 0;
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
