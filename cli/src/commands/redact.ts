import { parseArgs } from 'node:util';
import { emailIndex, loadConfig, openDatabase } from '@connect/db';
import { profileStream } from '@connect/domain';
import { openLedgerRuntime, redactEntries } from '@connect/ledger';

const USAGE = 'usage: connect redact (--index N | --user USER_ID) --reason TEXT --admin EMAIL';

/**
 * connect redact: erases the body of one entry (or of every entry of a user's profile) and records
 * who and why in the ledger; proofs, receipts and the audit keep verifying.
 */
export async function redactCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      index: { type: 'string' },
      user: { type: 'string' },
      reason: { type: 'string' },
      admin: { type: 'string' },
    },
  });
  const reason = values.reason?.trim();
  if ((values.index === undefined) === (values.user === undefined) || !reason || !values.admin) {
    console.error(`connect: ${USAGE}`);
    return 2;
  }
  if (values.index !== undefined && !/^(0|[1-9][0-9]{0,15})$/.test(values.index)) {
    console.error('connect: --index must be a ledger index (a non-negative integer)');
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
    const { db } = runtime.database;
    const admin = await db
      .selectFrom('users')
      .innerJoin('user_roles', 'user_roles.user_id', 'users.id')
      .select('users.id')
      .where('users.email_index', '=', await emailIndex(runtime.keys)(values.admin))
      .where('user_roles.role', '=', 'admin')
      .executeTakeFirst();
    if (!admin) {
      console.error(`connect: ${values.admin} is not an admin (connect users grant-role EMAIL admin)`);
      return 1;
    }
    const target =
      values.index !== undefined
        ? { index: Number(values.index) }
        : { stream: profileStream(values.user as string) };
    const redacted = await redactEntries({ db, ledger: runtime.ledger }, target, { reason, by: admin.id });
    if (redacted.length === 0) {
      console.error('connect: no such entry to redact');
      return 1;
    }
    for (const entry of redacted) {
      console.log(
        `entry ${entry.index} (${entry.stream}): ${entry.erased ? 'redacted' : 'was already redacted'}`,
      );
    }
    return 0;
  } finally {
    await runtime.close();
    await database.close();
  }
}
