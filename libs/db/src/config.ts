import path from 'node:path';
import { z } from 'zod';

const originPattern = /^[^\s+][^\n+]*[^\s+]$|^[^\s+]$/;

export const configSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  CONNECT_READER_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  CONNECT_DATA_DIR: z.string().min(1).default('./.data'),
  CONNECT_LEDGER_ORIGIN: z
    .string()
    .regex(originPattern, 'must hold no "+", no newline and no leading or trailing space')
    .default('connect.local/ledger'),
  CONNECT_LEDGER_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be the base64 of a 32-byte Ed25519 seed')
    .optional(),
  CONNECT_MAX_DOCUMENT_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(25 * 1024 * 1024),
  CONNECT_AUTH_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(20),
  CONNECT_INVITE_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(20),
  CONNECT_SESSION_IDLE_TIMEOUT: z.coerce
    .number()
    .int()
    .min(60)
    .default(7 * 24 * 3600),
  CONNECT_SESSION_MAX_LIFETIME: z.coerce
    .number()
    .int()
    .min(60)
    .default(30 * 24 * 3600),
  CONNECT_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(120_000),
  CONNECT_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(10_000),
  CONNECT_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(72_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  /** How the query service logs in as connect_reader; unset → derived from the database URL. */
  readerDatabaseUrl: string | undefined;
  dataDir: string;
  ledgerOrigin: string;
  ledgerKey: string | undefined;
  /** Largest document upload accepted, in bytes. */
  maxDocumentBytes: number;
  /** Signup and login attempts per client address and minute. */
  authRateLimit: number;
  /** Invitations by email per user and minute. */
  inviteRateLimit: number;
  /** Seconds a session lasts without a refresh. */
  sessionIdleTimeout: number;
  /** Seconds a session lasts at most, however active. */
  sessionMaxLifetime: number;
  /** How long a client may take to send a request, its headers, and to idle between requests. */
  httpTimeouts: { requestMs: number; headersMs: number; keepAliveMs: number };
  logLevel: z.infer<typeof configSchema>['LOG_LEVEL'];
}

export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; message: string }[]) {
    super(`invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.message}`).join('\n')}`);
  }
}

/** Reads the configuration from environment variables; a bad value throws a ConfigError naming it. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({ variable: String(issue.path[0]), message: issue.message })),
    );
  }
  const c = parsed.data;
  return {
    port: c.PORT,
    host: c.HOST,
    databaseUrl: c.DATABASE_URL,
    readerDatabaseUrl: c.CONNECT_READER_DATABASE_URL,
    dataDir: path.resolve(c.CONNECT_DATA_DIR),
    ledgerOrigin: c.CONNECT_LEDGER_ORIGIN,
    ledgerKey: c.CONNECT_LEDGER_KEY,
    maxDocumentBytes: c.CONNECT_MAX_DOCUMENT_BYTES,
    authRateLimit: c.CONNECT_AUTH_RATE_LIMIT,
    inviteRateLimit: c.CONNECT_INVITE_RATE_LIMIT,
    sessionIdleTimeout: c.CONNECT_SESSION_IDLE_TIMEOUT,
    sessionMaxLifetime: c.CONNECT_SESSION_MAX_LIFETIME,
    httpTimeouts: {
      requestMs: c.CONNECT_REQUEST_TIMEOUT_MS,
      headersMs: c.CONNECT_HEADERS_TIMEOUT_MS,
      keepAliveMs: c.CONNECT_KEEP_ALIVE_TIMEOUT_MS,
    },
    logLevel: c.LOG_LEVEL,
  };
}
