import { authenticator, loadTokenIssuer, sessionGate, type TokenIssuer } from '@connect/auth';
import { assertMigrated, type Database, type KeyRing } from '@connect/db';
import { createServer, docsRoutes, registerSharedRateLimits, type ServerOptions } from '@connect/http';
import type { Ledger, LedgerRuntime } from '@connect/ledger';
import {
  loadVapidKeys,
  migrateDeliveryQueue,
  type SmsSender,
  smsSenderFromConfig,
  type VapidKeys,
} from '@connect/notifier';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { accountEmails } from './auth/accounts.ts';
import { eraseRoutes } from './auth/erase-routes.ts';
import { type OidcSettings, oidcRoutes } from './auth/oidc/routes.ts';
import { roleRoutes } from './auth/role-routes.ts';
import { authRoutes } from './auth/routes.ts';
import type { SessionLifetimes } from './auth/sessions.ts';
import { ensureDefaultTypes, type TypeRegistry, typeRegistry } from './commitments/load.ts';
import { commitmentRoutes } from './commitments/routes.ts';
import { commitmentTypeRoutes } from './commitments/type-routes.ts';
import { countOutcomes } from './metrics.ts';
import { deadLetterRoutes } from './notifications/dead-letter-routes.ts';
import { phoneRoutes } from './notifications/phone-routes.ts';
import { notificationPreferenceRoutes } from './notifications/preferences-routes.ts';
import { pushRoutes } from './notifications/push-routes.ts';
import { commandOperations } from './openapi.ts';
import { limitCommands } from './rate-limits.ts';
import { webhookRoutes } from './webhooks/routes.ts';

export interface CommandDeps {
  pool: pg.Pool;
  db: Kysely<Database>;
  ledger: Ledger;
  tokens: TokenIssuer;
  types: TypeRegistry;
  dataDir: string;
  /** The data keys (uploaded documents are sealed with them). */
  keys: KeyRing;
  /** Whether new documents are written sealed (CONNECT_ENCRYPTION); true when absent. */
  encryption?: boolean;
  authAttemptsPerMinute?: number;
  /** Invitations by email per user and minute. */
  invitesPerMinute?: number;
  /** Commands (POST /v1/commitments…, PATCH /v1/me) per user and minute; 600 when absent. */
  commandsPerMinute?: number;
  sessionLifetimes?: SessionLifetimes;
  /** The clock sessions are started, refreshed, ended and checked by (tests move it). */
  now?: () => Date;
  maxDocumentBytes?: number;
  /** CONNECT_WEBHOOKS_ALLOW_PRIVATE: webhook endpoints may be on private or loopback addresses. */
  webhooksAllowPrivate?: boolean;
  /** Web Push VAPID keys (CONNECT_VAPID_*); made in the data directory when absent. */
  vapidKeys?: VapidKeys;
  /** Social login through OpenID providers (CONNECT_OIDC_*, CONNECT_AUTH_REDIRECT_URLS); unset → none. */
  oidc?: OidcSettings;
  /** Twilio, for phone confirmation codes (CONNECT_TWILIO_*); unset → SMS is off. */
  sms?: SmsSender;
  /** Phone confirmation codes sent per user and hour. */
  phoneCodesPerHour?: number;
}

/** Everything the command service needs beyond the ledger runtime: auth keys, commitment types. */
export async function commandDeps(runtime: LedgerRuntime): Promise<CommandDeps> {
  const { pool, db } = runtime.database;
  await ensureDefaultTypes(runtime.ledger);
  return {
    pool,
    db,
    ledger: runtime.ledger,
    tokens: await loadTokenIssuer(runtime.config.dataDir),
    types: typeRegistry(db, runtime.ledger),
    dataDir: runtime.config.dataDir,
    keys: runtime.keys,
    encryption: runtime.config.encryption,
    authAttemptsPerMinute: runtime.config.authRateLimit,
    invitesPerMinute: runtime.config.inviteRateLimit,
    commandsPerMinute: runtime.config.commandRateLimit,
    sessionLifetimes: {
      idleSeconds: runtime.config.sessionIdleTimeout,
      maxSeconds: runtime.config.sessionMaxLifetime,
    },
    maxDocumentBytes: runtime.config.maxDocumentBytes,
    webhooksAllowPrivate: runtime.config.webhooksAllowPrivate,
    sms: smsSenderFromConfig(runtime.config),
    vapidKeys: await loadVapidKeys(runtime.config),
    oidc: {
      providers: runtime.config.oidcProviders,
      redirectUrls: runtime.config.authRedirectUrls,
      publicApiUrl: runtime.config.publicApiUrl,
    },
  };
}

/** The command service's routes, for a server of its own or the combined `connect start`. */
export async function commandRoutes(app: FastifyInstance, deps: CommandDeps): Promise<void> {
  const sessions = sessionGate(deps);
  app.addHook('onClose', () => sessions.close());
  const authenticate = authenticator({ tokens: deps.tokens, sessions });
  const emails = accountEmails(deps);
  countOutcomes(app);
  // Account mail (verification, recovery) is a job of the notifier's queue, added by these routes.
  await migrateDeliveryQueue(deps.pool);
  // Rate limits counted in PostgreSQL, shared by every instance; before the routes they apply to.
  await registerSharedRateLimits(app, { db: deps.db, log: app.log, now: deps.now });
  limitCommands(app, { authenticate, commandsPerMinute: deps.commandsPerMinute ?? 600 });
  await app.register(authRoutes, { ...deps, emails, authenticate, sessions });
  await app.register(oidcRoutes, { ...deps, emails, authenticate });
  await app.register(eraseRoutes, { ...deps, authenticate, sessions });
  await app.register(roleRoutes, { ...deps, authenticate, sessions });
  await app.register(commitmentRoutes, { ...deps, authenticate });
  await app.register(commitmentTypeRoutes, { ...deps, authenticate });
  await app.register(notificationPreferenceRoutes, { ...deps, authenticate });
  await app.register(deadLetterRoutes, { ...deps, authenticate });
  await app.register(phoneRoutes, { ...deps, authenticate });
  await app.register(pushRoutes, { ...deps, authenticate });
  await app.register(webhookRoutes, { ...deps, authenticate });
}

export function buildApp(
  deps: CommandDeps,
  options: Pick<
    ServerOptions,
    'logLevel' | 'timeouts' | 'corsOrigins' | 'trustedProxies' | 'metricsToken' | 'logStream'
  > = {},
): FastifyInstance {
  const app = createServer({ ...options, checkReady: () => assertMigrated(deps.pool) });
  app.register(commandRoutes, deps);
  app.register(docsRoutes, { operations: commandOperations });
  return app;
}
