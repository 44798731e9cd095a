import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadTokenIssuer } from '@connect/auth';
import { signingKeyFromSeed } from '@connect/crypto';
import { keyRing, localMasterKeys } from '@connect/db';
import { bodyCipher, openLedger } from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { buildApp, type CommandDeps } from '../src/app.ts';
import { ensureDefaultTypes, typeRegistry } from '../src/commitments/load.ts';

export interface TestApp {
  app: FastifyInstance;
  database: TestDatabase;
  deps: CommandDeps;
  close(): Promise<void>;
}

export async function testApp(
  overrides: Partial<CommandDeps> = {},
  serverOptions: Parameters<typeof buildApp>[1] = {},
): Promise<TestApp> {
  const database = await createTestDatabase({ poolSize: 20 });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-command-'));
  const key = signingKeyFromSeed('test.connect.local/ledger', new Uint8Array(32).fill(5));
  const keys = keyRing(database.pool, await localMasterKeys({ dataDir }), { listen: false });
  const ledger = await openLedger({
    pool: database.pool,
    db: database.db,
    origin: key.name,
    key,
    cipher: bodyCipher(keys, { sealNew: true }),
  });
  await ensureDefaultTypes(ledger);
  const deps: CommandDeps = {
    pool: database.pool,
    db: database.db,
    ledger,
    tokens: await loadTokenIssuer(dataDir),
    types: typeRegistry(database.db, ledger),
    dataDir,
    keys,
    authAttemptsPerMinute: 1000,
    ...overrides,
  };
  const app = buildApp(deps, { logLevel: process.env.TEST_LOG ?? 'silent', ...serverOptions });
  await app.ready();
  return {
    app,
    database,
    deps,
    close: async () => {
      await app.close();
      await keys.close();
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Account {
  userId: string;
  email: string;
  token: string;
  refreshToken: string;
  auth: { authorization: string };
}

let accounts = 0;
export async function signUp(app: FastifyInstance, name: string): Promise<Account> {
  const email = `${name.toLowerCase()}-${++accounts}-${Date.now()}@example.test`;
  const response = await app.inject({
    method: 'POST',
    url: '/v1/auth/signup',
    payload: { email, password: 'correct horse battery', displayName: name },
  });
  if (response.statusCode !== 201) throw new Error(`signup: ${response.statusCode} ${response.body}`);
  const body = response.json() as { access_token: string; refresh_token: string; user: { id: string } };
  return {
    userId: body.user.id,
    email,
    token: body.access_token,
    refreshToken: body.refresh_token,
    auth: { authorization: `Bearer ${body.access_token}` },
  };
}
