import { authenticator, loadTokenIssuer, sessionGate, type TokenIssuer } from '@connect/auth';
import type { SigningKey } from '@connect/crypto';
import {
  assertMigrated,
  createPool,
  type Database,
  DEFAULT_APP_URL,
  DEFAULT_REMINDERS,
  readerLogin,
} from '@connect/db';
import { createServer, docsRoutes, registerSharedRateLimits, type ServerOptions } from '@connect/http';
import { type BodyCipher, type LedgerRuntime, treeNodeCache } from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { adminRoutes } from './admin-routes.ts';
import { calendarRoutes } from './calendar/routes.ts';
import { readRoutes } from './commitments/routes.ts';
import type { SubscriptionLimits } from './graphql/connections.ts';
import { graphqlRoutes } from './graphql/plugin.ts';
import { type LedgerRouteDeps, ledgerRoutes } from './ledger-routes.ts';
import { exportRoutes } from './me/export-routes.ts';
import { notificationRoutes } from './notifications/routes.ts';
import { queryOperations } from './openapi.ts';
import { partyLedgerRoutes } from './party-ledger-routes.ts';
import { watchProjectedIndex } from './projected-index.ts';
import { createReaderDb, type ReaderDb } from './reader.ts';
import { verifyPageRoutes } from './verify-page/routes.ts';
import { verifyRoutes } from './verify-routes.ts';

export interface QueryDeps extends LedgerRouteDeps {
  /** Opens the ledger's sealed entry bodies. */
  cipher: BodyCipher;
  /** The ledger's key: the public half checks what clients send, the private half signs stream heads. */
  key: SigningKey;
  pool: pg.Pool;
  /** Where the read models are; reads log in there as connect_reader. */
  databaseUrl: string;
  /**
   * A read replica (READ_DATABASE_URL) that databaseUrl points at: how far its read models reach
   * is read there, so Connect-Index and Connect-Min-Index stay exact across its lag.
   */
  replicaUrl?: string;
  /** Read-model connections to use instead of opening a pool from databaseUrl. */
  reader?: Kysely<Database>;
  /** How many connections the pool opened from databaseUrl holds (CONNECT_READ_POOL_SIZE). */
  readPoolSize?: number;
  /** Longest a read may run before it is stopped and answered 503 (CONNECT_READ_TIMEOUT_MS). */
  readTimeoutMs?: number;
  tokens: TokenIssuer;
  /** How long Connect-Min-Index may hold a request; 5 s by default. */
  minIndexWaitMs?: number;
  /** Bounds on GraphQL subscriptions (see graphql/connections.ts). */
  subscriptions?: SubscriptionLimits;
  /** The web app's base URL, for links (CONNECT_APP_URL). */
  appUrl?: string;
  /** Seconds before a due date to remind at (CONNECT_REMINDERS). */
  reminderOffsets?: readonly number[];
  /** POST /v1/ledger/verify requests per client address and minute (CONNECT_VERIFY_RATE_LIMIT). */
  verifiesPerMinute?: number;
  /** The clock (rate-limit windows, session lapses); tests move it. */
  now?: () => Date;
}

/** How often a replica's checkpoints are read: the most a read-your-writes read waits beyond the replica's lag. */
const REPLICA_POLL_MS = 50;

/** What the query service needs, wired from a ledger runtime (and its data dir's token key). */
export async function queryDeps(runtime: LedgerRuntime, tokens?: TokenIssuer): Promise<QueryDeps> {
  const { pool, db } = runtime.database;
  const { ledger } = runtime;
  return {
    pool,
    db,
    databaseUrl: await readerLogin(pool, runtime.database.url, runtime.config),
    replicaUrl: runtime.config.readDatabaseUrl,
    readPoolSize: runtime.config.readPoolSize,
    readTimeoutMs: runtime.config.readTimeoutMs,
    origin: ledger.origin,
    cipher: ledger.cipher,
    verifierKey: ledger.verifierKey,
    key: ledger.key,
    tokens: tokens ?? (await loadTokenIssuer(runtime.config.dataDir)),
    appUrl: runtime.config.appUrl,
    reminderOffsets: runtime.config.reminderOffsets,
    verifiesPerMinute: runtime.config.verifyRateLimit,
    warmProofCache: true,
  };
}

/** The query service's routes, for a server of its own or the combined `connect start`. */
export async function queryRoutes(app: FastifyInstance, deps: QueryDeps): Promise<void> {
  const sessions = sessionGate(deps);
  const replica = deps.replicaUrl ? createPool(deps.replicaUrl, 2) : undefined;
  const projectedIndex = await watchProjectedIndex(
    replica ?? deps.pool,
    replica ? { listen: false, pollMs: REPLICA_POLL_MS } : {},
  );
  const own = deps.reader
    ? undefined
    : createReaderDb(deps.databaseUrl, { max: deps.readPoolSize, timeoutMs: deps.readTimeoutMs });
  const reader = deps.reader ?? (own as ReaderDb).db;
  if (own) app.watchPool('read', own.pool);
  if (replica) app.watchPool('replica', replica);
  app.addHook('onClose', async () => {
    await sessions.close();
    await projectedIndex.close();
    await own?.close();
    await replica?.end();
  });
  const authenticate = authenticator({ tokens: deps.tokens, sessions });
  // Counted in PostgreSQL, shared by every instance; before the routes they apply to.
  await registerSharedRateLimits(app, { db: deps.db, log: app.log, now: deps.now });
  // One proof cache for the proof endpoints and the receipts.
  const withNodes = { ...deps, nodes: deps.nodes ?? treeNodeCache() };
  await app.register(ledgerRoutes, withNodes);
  await app.register(verifyPageRoutes);
  await app.register(verifyRoutes, deps);
  await app.register(readRoutes, { ...deps, reader, authenticate, projectedIndex });
  await app.register(partyLedgerRoutes, { ...withNodes, reader, authenticate, projectedIndex });
  await app.register(notificationRoutes, { ...deps, reader, authenticate, projectedIndex });
  await app.register(exportRoutes, { ...withNodes, reader, authenticate, projectedIndex });
  await app.register(adminRoutes, { ...deps, authenticate });
  await app.register(calendarRoutes, {
    ...deps,
    reader,
    authenticate,
    projectedIndex,
    secret: deps.key.seed,
    appUrl: deps.appUrl ?? DEFAULT_APP_URL,
    reminderOffsets: deps.reminderOffsets ?? DEFAULT_REMINDERS,
  });
  await app.register(graphqlRoutes, { ...deps, reader, authenticate, sessions, projectedIndex });
}

export function buildApp(
  deps: QueryDeps,
  options: Pick<
    ServerOptions,
    'logLevel' | 'timeouts' | 'corsOrigins' | 'trustedProxies' | 'metricsToken' | 'logStream'
  > = {},
): FastifyInstance {
  const app = createServer({ ...options, checkReady: () => assertMigrated(deps.pool) });
  app.register(queryRoutes, deps);
  app.register(docsRoutes, { operations: queryOperations });
  return app;
}
