// The whole service in one Fastify instance, as `connect start` runs it (commands, reads, the
// projector), on a fresh test database: for tests that go from a command to what is read.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadTokenIssuer } from '@connect/auth';
import { type CommandDeps, commandRoutes } from '@connect/command';
import { signingKeyFromSeed } from '@connect/crypto';
import { keyRing, localMasterKeys } from '@connect/db';
import { createServer } from '@connect/http';
import { type BodyCipher, bodyCipher, openLedger } from '@connect/ledger';
import { type NotifierOptions, openNotifier } from '@connect/notifier';
import { attachProjector, PROJECTIONS, type Projector } from '@connect/projector';
import { createReaderDb, type QueryDeps, queryRoutes } from '@connect/query';
import type { FastifyInstance } from 'fastify';
import { ensureDefaultTypes, typeRegistry } from '../../services/command/src/commitments/load.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

/** The web app the stack's notifications link to. */
export const STACK_APP_URL = 'https://app.test.connect.local';

export interface Stack {
  app: FastifyInstance;
  database: TestDatabase;
  command: CommandDeps;
  query: QueryDeps;
  projector: Projector;
  /** `METHOD /path/:param` of every route the app serves. */
  routes: string[];
  close(): Promise<void>;
}

export interface StackOptions {
  minIndexWaitMs?: number;
  poolSize?: number;
  /** Sees every SQL statement the query service runs. */
  onQuerySql?(sql: string): void;
  subscriptions?: QueryDeps['subscriptions'];
  /** The notifier's hooks (e.g. the delivery queue's), made once the database exists. */
  notifierHooks?(
    database: TestDatabase,
    cipher: BodyCipher,
  ): Promise<Pick<NotifierOptions, 'enqueue' | 'publish'>>;
}

export async function testStack(options: StackOptions = {}): Promise<Stack> {
  const database = await createTestDatabase({ poolSize: options.poolSize ?? 20 });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-stack-'));
  const key = signingKeyFromSeed('test.connect.local/ledger', new Uint8Array(32).fill(11));
  const keys = keyRing(database.pool, await localMasterKeys({ dataDir }), { listen: false });
  const cipher = bodyCipher(keys, { sealNew: true });
  const ledger = await openLedger({ pool: database.pool, db: database.db, origin: key.name, key, cipher });
  await ensureDefaultTypes(ledger);
  const tokens = await loadTokenIssuer(dataDir);
  const command: CommandDeps = {
    pool: database.pool,
    db: database.db,
    ledger,
    tokens,
    types: typeRegistry(database.db, ledger),
    dataDir,
    keys,
    authAttemptsPerMinute: 10_000,
  };
  const onQuerySql = options.onQuerySql;
  const reader = createReaderDb(database.url, {
    log: (event) => {
      if (event.level === 'query') onQuerySql?.(event.query.sql);
    },
  });
  const query: QueryDeps = {
    pool: database.pool,
    db: database.db,
    databaseUrl: database.url,
    reader: reader.db,
    origin: key.name,
    cipher,
    verifierKey: ledger.verifierKey,
    key,
    tokens,
    minIndexWaitMs: options.minIndexWaitMs,
    subscriptions: options.subscriptions,
  };
  const app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  const routes: string[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push(`${method} ${route.url}`);
  });
  const hooks = (await options.notifierHooks?.(database, cipher)) ?? {};
  const notifier = await openNotifier(database.pool, { appUrl: STACK_APP_URL, ...hooks });
  const projector = attachProjector(app, {
    pool: database.pool,
    origin: key.name,
    cipher,
    options: { pollMs: 200, projections: [...PROJECTIONS, notifier] },
  });
  app.register(commandRoutes, command);
  app.register(queryRoutes, query);
  await app.ready();
  return {
    app,
    database,
    command,
    query,
    projector,
    routes,
    close: async () => {
      await app.close();
      await reader.close();
      await ledger.drain();
      await keys.close();
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
