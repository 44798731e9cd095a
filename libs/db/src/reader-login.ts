// The query service reads as connect_reader, a LOGIN role (migration 005) that is no superuser and
// a member of no role: its connections authenticate as it, so no statement they run can switch
// to a more privileged role, as a superuser session that merely SET ROLE could.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import type { Config } from './config.ts';
import { readOrCreateSecretFile } from './secret-file.ts';

export const READER_ROLE = 'connect_reader';
const SCRAM_ITERATIONS = 4096;

/** `url` logging in as connect_reader: with `password`, else with none (trust or peer auth). */
export function readerUrlFor(url: string, password?: string): string {
  const reader = new URL(url);
  reader.username = READER_ROLE;
  reader.password = password ?? '';
  return reader.toString();
}

/** A SCRAM-SHA-256 verifier, as PostgreSQL stores it: the password itself never reaches the server. */
export function scramVerifier(password: string, salt = randomBytes(16)): string {
  const salted = pbkdf2Sync(password, salt, SCRAM_ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest('base64');
  const serverKey = createHmac('sha256', salted).update('Server Key').digest('base64');
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${salt.toString('base64')}$${storedKey}:${serverKey}`;
}

/** Logs in with `url` and refuses a login that is not connect_reader or could gain privileges. */
async function assertReaderLogin(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ login: string; privileged: boolean; member: boolean }>(
      `select session_user as login,
              r.rolsuper or r.rolcreaterole or r.rolcreatedb or r.rolreplication or r.rolbypassrls as privileged,
              exists (select 1 from pg_auth_members m where m.member = r.oid) as member
         from pg_roles r where r.rolname = session_user`,
    );
    const login = rows[0];
    if (login?.login !== READER_ROLE || login.privileged || login.member) {
      throw new Error(
        `reads must log in as ${READER_ROLE}, a role with no superuser, createrole, createdb, replication or bypassrls attribute and a member of no role; this login is ${login?.login}`,
      );
    }
  } finally {
    await client.end();
  }
}

// Roles belong to the whole server: services of one deployment setting the password together
// collide ("tuple concurrently updated"), and the one that lost only has to try again.
async function setReaderPassword(admin: pg.Pool, password: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.query(`alter role ${READER_ROLE} password '${scramVerifier(password)}'`);
      return;
    } catch (error) {
      if (attempt < 10 && /concurrently/.test((error as Error).message)) {
        await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
        continue;
      }
      throw new Error(
        `could not set ${READER_ROLE}'s password (${(error as Error).message}); give it a login yourself and set CONNECT_READER_DATABASE_URL`,
      );
    }
  }
}

/**
 * The URL reads log in with: CONNECT_READER_DATABASE_URL as given, else `adminUrl` (or the read
 * replica, READ_DATABASE_URL) as connect_reader with the password kept in
 * CONNECT_DATA_DIR/reader-password (mode 0600), which the admin connection sets on the role when
 * it does not already log in (trust auth needs none).
 */
export async function readerLogin(
  admin: pg.Pool,
  adminUrl: string,
  config: Pick<Config, 'readerDatabaseUrl' | 'dataDir'> & Partial<Pick<Config, 'readDatabaseUrl'>>,
): Promise<string> {
  if (config.readerDatabaseUrl) {
    await assertReaderLogin(config.readerDatabaseUrl);
    return config.readerDatabaseUrl;
  }
  const password = await readOrCreateSecretFile(path.join(config.dataDir, 'reader-password'), () =>
    randomBytes(24).toString('base64url'),
  );
  const url = readerUrlFor(adminUrl, password);
  try {
    await assertReaderLogin(url);
  } catch {
    await setReaderPassword(admin, password);
    await assertReaderLogin(url).catch((error: Error) => {
      throw new Error(
        `reads cannot log in as ${READER_ROLE}: ${error.message} (or set CONNECT_READER_DATABASE_URL)`,
      );
    });
  }
  if (!config.readDatabaseUrl) return url;
  const replicaUrl = readerUrlFor(config.readDatabaseUrl, password);
  await untilReplicaLogsIn(replicaUrl);
  return replicaUrl;
}

/** A password just set on the primary reaches the replica with its replay: waits up to `ms` for it. */
async function untilReplicaLogsIn(url: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await assertReaderLogin(url);
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(
          `reads cannot log in as ${READER_ROLE} on the read replica (READ_DATABASE_URL): ${(error as Error).message}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
