import { grantAdmin } from '@connect/command';
import { loadConfig, migrate, openDatabase } from '@connect/db';

/** connect users grant-admin <email> */
export async function usersCommand(args: string[]): Promise<number> {
  const [sub, email] = args;
  if (sub !== 'grant-admin' || !email) throw new Error('usage: connect users grant-admin <email>');
  const database = await openDatabase(loadConfig(process.env), { create: false });
  try {
    await migrate(database.pool);
    if (!(await grantAdmin(database.db, email))) {
      console.error(`connect: no user has the email ${email}`);
      return 1;
    }
    console.log(`${email} is now an admin`);
    return 0;
  } finally {
    await database.close();
  }
}
