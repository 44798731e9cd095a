import { ConfigError } from '@connect/db';
import { backupCommand } from './commands/backup.ts';
import { exportCommand, importCommand } from './commands/export-import.ts';
import { keysCommand } from './commands/keys.ts';
import { migrateCommand } from './commands/migrate.ts';
import { migrateFromSupabaseCommand } from './commands/migrate-from-supabase.ts';
import { reconcileCommand } from './commands/reconcile.ts';
import { redactCommand } from './commands/redact.ts';
import { replayCommand } from './commands/replay.ts';
import { restoreCommand } from './commands/restore.ts';
import { start } from './commands/start.ts';
import { usersCommand } from './commands/users.ts';
import { verifyCommand } from './commands/verify.ts';

const USAGE = `usage: connect <command>

  start        run the service (embedded PostgreSQL unless DATABASE_URL is set)
  migrate      apply database migrations and exit
  replay [--projection NAME]  rebuild read models from the ledger while the service keeps answering
  keys show    print the ledger's verifier key
  keys status  the primary master key, and how many data keys each master key wraps
  keys rotate-master        rewrap every data key under a new master key while the service runs
                            (key file: new key made, old ones dropped; CONNECT_MASTER_KEY: to its first key)
  keys seal-existing        seal the values still in the clear (from before their migration sealed
                            them, or written with CONNECT_ENCRYPTION off) while the service runs
  users grant-role EMAIL ROLE    give that user a role (admin, auditor); recorded in the ledger
  users revoke-role EMAIL ROLE   take it back (the last admin keeps theirs)
  users grant-admin EMAIL   the same as grant-role EMAIL admin
  users erase EMAIL|ID      destroy the user's data keys and personal data (crypto-shredding);
                            their commitments stay for the others, naming them "(erased user)"
  redact (--index N | --user ID) --reason TEXT --admin EMAIL   erase an entry's body; proofs stay valid
  verify ledger             recompute every hash and check every checkpoint; exit 1 naming the first bad entry
  verify receipt FILE [--key KEY]   check a receipt offline against a trusted key (--key, or pinned by verify remote)
  verify remote --url URL   pin the server's key, then check each new checkpoint extends the last
  export FILE               the whole ledger as JSON Lines
  import FILE               into an empty database, after checking every hash and signature
  backup DIR                a base backup of the embedded PostgreSQL, documents and keys, with a manifest
  restore DIR --to <ISO time | ledger index | latest> --data-dir NEW [--wal-archive DIR] [--documents DIR]
                            the backup, replayed from the WAL archive to that point, as a new data directory
  migrate-from-supabase --source URL [--storage DIR] [--report FILE]
                            import a Supabase project's users, types and commitments (rerun: nothing twice)
  reconcile --source URL [--storage DIR] [--report FILE]
                            compare that project with what Connect serves; exit 1 listing each difference

Configuration comes from the environment; see README.md.`;

class UsageError extends Error {}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case 'start':
      return start();
    case 'migrate':
      return migrateCommand();
    case 'migrate-from-supabase':
      return migrateFromSupabaseCommand(rest);
    case 'reconcile':
      return reconcileCommand(rest);
    case 'redact':
      return redactCommand(rest);
    case 'replay':
      return replayCommand(rest);
    case 'users':
      return usersCommand(rest);
    case 'verify':
      return verifyCommand(rest);
    case 'export':
      return exportCommand(rest);
    case 'import':
      return importCommand(rest);
    case 'backup':
      return backupCommand(rest);
    case 'restore':
      return restoreCommand(rest);
    case 'keys':
      return keysCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

const args = process.argv.slice(2);
try {
  process.exitCode = await main(args);
} catch (error) {
  if (error instanceof UsageError) {
    console.error(`connect: ${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
  } else if (error instanceof ConfigError) {
    console.error(`connect: ${error.message}`);
    process.exitCode = 2;
  } else {
    console.error(`connect: ${(error as Error).message}`);
    process.exitCode = 1;
  }
}
// A one-off command is done, or the service did not start: a handle left open (a pooled connection
// on an error path) must not keep the process running. A running service stops its own way (serve.ts).
if (args[0] !== 'start' || process.exitCode !== 0) setTimeout(() => process.exit(), 1000).unref();
