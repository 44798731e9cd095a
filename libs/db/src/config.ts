import { isIP } from 'node:net';
import path from 'node:path';
import { Cron } from 'croner';
import { z } from 'zod';

const DURATION_UNITS: Record<string, number> = { w: 7 * 86400, d: 86400, h: 3600, m: 60 };

/** Reminder offsets before a due date, e.g. "7d,1d,1h": seconds, largest first, no repeats. */
export function parseReminderOffsets(text: string): number[] | undefined {
  const parts = text.split(',').map((part) => part.trim());
  if (parts.length === 1 && parts[0] === '') return [];
  const seconds: number[] = [];
  for (const part of parts) {
    const match = /^(\d{1,4})([wdhm])$/.exec(part);
    const unit = match && DURATION_UNITS[match[2] as string];
    if (!match || !unit || Number(match[1]) === 0) return undefined;
    seconds.push(Number(match[1]) * unit);
  }
  return [...new Set(seconds)].sort((a, b) => b - a);
}

export const DEFAULT_REMINDERS = [7 * 86400, 86400, 3600];
export const DEFAULT_APP_URL = 'http://localhost:5173';

/** Browser origins, e.g. "https://app.example.com,http://localhost:5173"; undefined when one is not an origin. */
export function parseOrigins(text: string): string[] | undefined {
  const origins: string[] = [];
  for (const part of text.split(',').map((entry) => entry.trim())) {
    if (part === '') continue;
    // The scheme and authority, no more (a trailing slash is tolerated); no user or password.
    if (!/^https?:\/\/[^/?#@\\\s]+\/?$/i.test(part) || !URL.canParse(part)) return undefined;
    origins.push(new URL(part).origin);
  }
  return [...new Set(origins)];
}

/** The named address ranges a trusted proxy may be given as (those Fastify's proxy-addr knows). */
const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * The reverse proxies in front of the service, e.g. "10.0.0.0/8,loopback": addresses, CIDR ranges
 * or named ranges; undefined when one is none of these, or would trust every client: a /0 range, or
 * IPv4 written inside IPv6 ("::ffff:0.0.0.0/96" matches every IPv4 peer), which is to be written as
 * IPv4.
 */
export function parseTrustedProxies(text: string): string[] | undefined {
  const proxies: string[] = [];
  for (const part of text.split(',').map((entry) => entry.trim())) {
    if (part === '') continue;
    if (!PROXY_RANGES.has(part) && !isProxyRange(part)) return undefined;
    proxies.push(part);
  }
  return [...new Set(proxies)];
}

function isProxyRange(text: string): boolean {
  const [address = '', prefix, ...rest] = text.split('/');
  const version = isIP(address);
  // No IPv6 zone ("%eth0"): an address as the proxy's socket reports it has none.
  if (version === 0 || rest.length > 0 || address.includes('%') || (version === 6 && address.includes('.')))
    return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) >= 1 && Number(prefix) <= (version === 4 ? 32 : 128);
}

const originPattern = /^[^\s+][^\n+]*[^\s+]$|^[^\s+]$/;

/** A variable read by `parse`, which answers undefined for text it refuses; `message` says what is wanted. */
const parsedBy = <T>(parse: (text: string) => T | undefined, message: string) =>
  z.string().transform((text, ctx) => {
    const parsed = parse(text);
    if (parsed !== undefined) return parsed;
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  });

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
  READ_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  CONNECT_READ_POOL_SIZE: z.coerce.number().int().min(1).max(500).optional(),
  CONNECT_READ_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).optional(),
  CONNECT_DATA_DIR: z.string().min(1).default('./.data'),
  CONNECT_LEDGER_ORIGIN: z
    .string()
    .regex(originPattern, 'must hold no "+", no newline and no leading or trailing space')
    .default('connect.local/ledger'),
  CONNECT_LEDGER_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be the base64 of a 32-byte Ed25519 seed')
    .optional(),
  CONNECT_MASTER_KEY: z
    .string()
    .regex(
      /^[A-Za-z0-9+/]{43}=(,[A-Za-z0-9+/]{43}=)*$/,
      'must be the base64 of a 32-byte key, or several separated by commas (the first wraps new keys)',
    )
    .optional(),
  CONNECT_ENCRYPTION: z.enum(['on', 'off']).default('on'),
  CONNECT_MAX_DOCUMENT_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(25 * 1024 * 1024),
  CONNECT_AUTH_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(20),
  CONNECT_INVITE_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(20),
  CONNECT_COMMAND_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(600),
  CONNECT_VERIFY_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).optional(),
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
  CONNECT_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(10_000),
  CONNECT_NOTIFIER: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((value) => value === 'true' || value === '1'),
  CONNECT_WEBHOOKS_ALLOW_PRIVATE: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((value) => value === 'true' || value === '1'),
  CONNECT_APP_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .transform((url) => url.replace(/\/+$/, ''))
    .default(DEFAULT_APP_URL),
  CONNECT_REMINDERS: parsedBy(
    parseReminderOffsets,
    'must be durations like "7d,1d,1h" (units w, d, h, m)',
  ).default(DEFAULT_REMINDERS),
  CONNECT_SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
    .optional(),
  CONNECT_MAIL_FROM: z.string().min(3).default('Connect <no-reply@connect.local>'),
  CONNECT_PUBLIC_API_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .transform((url) => url.replace(/\/+$/, ''))
    .optional(),
  CONNECT_AUTH_REDIRECT_URLS: z
    .string()
    .transform((text, ctx) => {
      const urls = parseRedirectUrls(text);
      if (typeof urls === 'string') {
        ctx.addIssue({ code: 'custom', message: urls });
        return z.NEVER;
      }
      return urls;
    })
    .default([]),
  CONNECT_DELIVERY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(10),
  CONNECT_DELIVERY_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(8),
  CONNECT_TWILIO_ACCOUNT_SID: z
    .string()
    .regex(/^AC[0-9a-fA-F]{32}$/, 'must be a Twilio Account SID (AC followed by 32 hex digits)')
    .optional(),
  CONNECT_TWILIO_AUTH_TOKEN: z.string().min(1).max(200).optional(),
  CONNECT_TWILIO_FROM: z
    .string()
    .regex(
      /^\+[1-9]\d{1,14}$|^\d{3,8}$|^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$/,
      'must be an E.164 phone number (+15017122661), a short code or an alphanumeric sender ID',
    )
    .optional(),
  CONNECT_TWILIO_API_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .transform((url) => url.replace(/\/+$/, ''))
    .default('https://api.twilio.com'),
  CONNECT_VAPID_PUBLIC_KEY: z
    .string()
    .regex(/^[A-Za-z0-9_-]{87}$/, 'must be the base64url of a 65-byte uncompressed P-256 public key')
    .optional(),
  CONNECT_VAPID_PRIVATE_KEY: z
    .string()
    .regex(/^[A-Za-z0-9_-]{43}$/, 'must be the base64url of a 32-byte P-256 private key')
    .optional(),
  CONNECT_VAPID_SUBJECT: z
    .string()
    .regex(/^(mailto:\S+@\S+|https:\/\/\S+)$/, 'must be a mailto: or https:// URL')
    .default('mailto:no-reply@connect.local'),
  CONNECT_CORS_ORIGINS: parsedBy(
    parseOrigins,
    'must be comma-separated http(s) origins without a path, like "https://app.example.com"',
  ).default([]),
  CONNECT_TRUSTED_PROXIES: parsedBy(
    parseTrustedProxies,
    'must be comma-separated IP addresses, CIDR ranges or loopback, linklocal, uniquelocal, like "10.0.0.0/8,loopback"',
  ).default([]),
  CONNECT_METRICS_TOKEN: z
    .string()
    .regex(/^[\x21-\x7e]{16,200}$/, 'must be 16 to 200 printable characters without spaces')
    .optional(),
  CONNECT_WAL_ARCHIVE: z
    .string()
    .regex(/^[^'%\n]+$/, 'must be a directory path without quotes, % or newlines')
    .optional(),
  CONNECT_BACKUP_SCHEDULE: z
    .string()
    .refine(isCronPattern, 'must be a cron pattern like "0 3 * * *" (minute hour day month weekday)')
    .optional(),
  CONNECT_BACKUP_DIR: z.string().min(1).optional(),
  CONNECT_BACKUP_KEEP: z.coerce.number().int().min(1).max(10_000).default(7),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  /** How the query service logs in as connect_reader; unset → derived from the database URL. */
  readerDatabaseUrl: string | undefined;
  /** A read replica of the database: the query service reads the read models there. */
  readDatabaseUrl: string | undefined;
  /** Connections the query service reads the read models through (CONNECT_READ_POOL_SIZE). */
  readPoolSize: number;
  /** Longest a read of the read models may run, lock waits included (CONNECT_READ_TIMEOUT_MS). */
  readTimeoutMs: number;
  dataDir: string;
  ledgerOrigin: string;
  ledgerKey: string | undefined;
  /**
   * Master keys (base64, CONNECT_MASTER_KEY; secrets: never log them), the first wrapping new data
   * keys, the others only unwrapping (during a rotation); unset → the data directory's key file.
   */
  masterKeys: string[] | undefined;
  /** Whether new ledger bodies and sensitive fields are sealed (CONNECT_ENCRYPTION; off only to measure). */
  encryption: boolean;
  /** Largest document upload accepted, in bytes. */
  maxDocumentBytes: number;
  /** Auth attempts per minute and route, per client address and per account. */
  authRateLimit: number;
  /** Invitations by email per user and minute. */
  inviteRateLimit: number;
  /** Commands (POST /v1/commitments…, PATCH /v1/me) per user and minute. */
  commandRateLimit: number;
  /** POST /v1/ledger/verify requests per client address and minute. */
  verifyRateLimit: number;
  /** Seconds a session lasts without a refresh. */
  sessionIdleTimeout: number;
  /** Seconds a session lasts at most, however active. */
  sessionMaxLifetime: number;
  /** How long a client may take to send a request, its headers, and to idle between requests. */
  httpTimeouts: { requestMs: number; headersMs: number; keepAliveMs: number };
  /** On SIGTERM or SIGINT, how long requests under way may take to finish before their connections close. */
  shutdownTimeoutMs: number;
  /** Whether webhooks may go to private, loopback or link-local addresses (tests, closed networks). */
  webhooksAllowPrivate: boolean;
  /** Whether `connect start` runs the notifier in its process (false: it runs on its own). */
  notifier: boolean;
  /** The web app's base URL (no trailing slash): links to a commitment are `${appUrl}/commitments/<id>`. */
  appUrl: string;
  /** When to remind the parties before a due date: seconds before it, largest first (CONNECT_REMINDERS). */
  reminderOffsets: number[];
  logLevel: z.infer<typeof configSchema>['LOG_LEVEL'];
  /** Origins whose browsers may call the API (CONNECT_CORS_ORIGINS); empty → no CORS. */
  corsOrigins: string[];
  /**
   * The reverse proxies whose X-Forwarded-For (and -Proto, -Host) are believed (CONNECT_TRUSTED_PROXIES):
   * a request from one of them is from the nearest forwarded address that is not one of them. Empty →
   * every request is from the address that connected.
   */
  trustedProxies: string[];
  /** The Bearer token /metrics wants (CONNECT_METRICS_TOKEN; a secret: never log it); unset → loopback only. */
  metricsToken: string | undefined;
  /** Where email goes out (smtp[s]://user:pass@host:port); unset → no email is sent. */
  smtpUrl: string | undefined;
  /** The From of every email, e.g. `Connect <no-reply@example.com>`. */
  mailFrom: string;
  /** The API's public base URL, for links in emails (unsubscribe); unset → http://localhost:<port>. */
  publicApiUrl: string;
  /** Attempts of an email, push or SMS delivery before it is dead-lettered (exponential backoff between). */
  deliveryMaxAttempts: number;
  /** Deliveries the notifier's job worker runs at once. */
  deliveryConcurrency: number;
  /** The Web Push VAPID key pair (base64url, both or neither); unset → made once in the data directory. */
  vapidPublicKey: string | undefined;
  vapidPrivateKey: string | undefined;
  /** Who a push service may contact about our pushes: a mailto: or https: URL. */
  vapidSubject: string;
  /**
   * Twilio's Messages API for SMS (CONNECT_TWILIO_*); undefined → no SMS is sent. `authToken` is a
   * secret: never log it.
   */
  twilio: TwilioConfig | undefined;
  /** OpenID Connect providers for social login (CONNECT_OIDC_<NAME>_*); empty → none. */
  oidcProviders: OidcProviderConfig[];
  /** Where a social login may send the browser back to (CONNECT_AUTH_REDIRECT_URLS). */
  authRedirectUrls: string[];
  /** Where the embedded PostgreSQL archives its WAL (CONNECT_WAL_ARCHIVE); unset → no archiving. */
  walArchive: string | undefined;
  /** Scheduled backups of `connect start` (CONNECT_BACKUP_*); undefined → none. */
  backups: BackupScheduleConfig | undefined;
}

export interface BackupScheduleConfig {
  /** A cron pattern (croner syntax: 5 fields, or 6 with seconds first). */
  schedule: string;
  /** Each backup goes into a timestamped folder here. */
  dir: string;
  /** How many of the newest backups to keep; older ones are deleted after a backup succeeds. */
  keep: number;
}

/** Whether croner accepts the pattern (5 fields, or 6 with seconds first). */
export function isCronPattern(pattern: string): boolean {
  try {
    new Cron(pattern, { paused: true }).stop();
    return true;
  } catch {
    return false;
  }
}

export interface OidcProviderConfig {
  /** The NAME of CONNECT_OIDC_<NAME>_*, lower-cased: the provider in URLs (/v1/auth/oidc/<name>/…). */
  name: string;
  /** The issuer identifier; its discovery document is at <issuer>/.well-known/openid-configuration. */
  issuer: string;
  clientId: string;
  /** A secret: never log it. */
  clientSecret: string;
}

export interface TwilioConfig {
  accountSid: string;
  authToken: string;
  /** The sender: an E.164 number, a short code or an alphanumeric sender ID. */
  from: string;
  /** https://api.twilio.com, or a stand-in (tests). No trailing slash. */
  apiUrl: string;
}

const TWILIO_VARIABLES = [
  'CONNECT_TWILIO_ACCOUNT_SID',
  'CONNECT_TWILIO_AUTH_TOKEN',
  'CONNECT_TWILIO_FROM',
] as const;

export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; message: string }[]) {
    super(`invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.message}`).join('\n')}`);
  }
}

/** POST /v1/ledger/verify requests per client address and minute when CONNECT_VERIFY_RATE_LIMIT is unset. */
export const DEFAULT_VERIFY_RATE_LIMIT = 60;

/** The read pool's size when CONNECT_READ_POOL_SIZE is unset. */
export const DEFAULT_READ_POOL_SIZE = 20;

/** A read's time limit when CONNECT_READ_TIMEOUT_MS is unset: far above any read's, short of a hung one. */
export const DEFAULT_READ_TIMEOUT_MS = 10_000;

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
  if ((c.CONNECT_VAPID_PUBLIC_KEY === undefined) !== (c.CONNECT_VAPID_PRIVATE_KEY === undefined)) {
    const missing = c.CONNECT_VAPID_PUBLIC_KEY === undefined ? 'PUBLIC' : 'PRIVATE';
    throw new ConfigError([
      { variable: `CONNECT_VAPID_${missing}_KEY`, message: 'must be set along with the other VAPID key' },
    ]);
  }
  const twilioSet = TWILIO_VARIABLES.filter((variable) => c[variable] !== undefined);
  if (twilioSet.length > 0 && twilioSet.length < TWILIO_VARIABLES.length) {
    throw new ConfigError(
      TWILIO_VARIABLES.filter((variable) => c[variable] === undefined).map((variable) => ({
        variable,
        message: `must be set for SMS, as ${twilioSet.join(' and ')} is (or unset them all to turn SMS off)`,
      })),
    );
  }
  if ((c.CONNECT_BACKUP_SCHEDULE === undefined) !== (c.CONNECT_BACKUP_DIR === undefined)) {
    const missing = c.CONNECT_BACKUP_DIR === undefined ? 'DIR' : 'SCHEDULE';
    throw new ConfigError([
      {
        variable: `CONNECT_BACKUP_${missing}`,
        message: 'must be set along with the other of CONNECT_BACKUP_SCHEDULE and CONNECT_BACKUP_DIR',
      },
    ]);
  }
  const oidcProviders = parseOidcProviders(env);
  return {
    port: c.PORT,
    host: c.HOST,
    databaseUrl: c.DATABASE_URL,
    readerDatabaseUrl: c.CONNECT_READER_DATABASE_URL,
    readDatabaseUrl: c.READ_DATABASE_URL,
    readPoolSize: c.CONNECT_READ_POOL_SIZE ?? DEFAULT_READ_POOL_SIZE,
    readTimeoutMs: c.CONNECT_READ_TIMEOUT_MS ?? DEFAULT_READ_TIMEOUT_MS,
    dataDir: path.resolve(c.CONNECT_DATA_DIR),
    ledgerOrigin: c.CONNECT_LEDGER_ORIGIN,
    ledgerKey: c.CONNECT_LEDGER_KEY,
    masterKeys: c.CONNECT_MASTER_KEY?.split(','),
    encryption: c.CONNECT_ENCRYPTION === 'on',
    maxDocumentBytes: c.CONNECT_MAX_DOCUMENT_BYTES,
    authRateLimit: c.CONNECT_AUTH_RATE_LIMIT,
    inviteRateLimit: c.CONNECT_INVITE_RATE_LIMIT,
    commandRateLimit: c.CONNECT_COMMAND_RATE_LIMIT,
    verifyRateLimit: c.CONNECT_VERIFY_RATE_LIMIT ?? DEFAULT_VERIFY_RATE_LIMIT,
    sessionIdleTimeout: c.CONNECT_SESSION_IDLE_TIMEOUT,
    sessionMaxLifetime: c.CONNECT_SESSION_MAX_LIFETIME,
    httpTimeouts: {
      requestMs: c.CONNECT_REQUEST_TIMEOUT_MS,
      headersMs: c.CONNECT_HEADERS_TIMEOUT_MS,
      keepAliveMs: c.CONNECT_KEEP_ALIVE_TIMEOUT_MS,
    },
    shutdownTimeoutMs: c.CONNECT_SHUTDOWN_TIMEOUT_MS,
    webhooksAllowPrivate: c.CONNECT_WEBHOOKS_ALLOW_PRIVATE,
    notifier: c.CONNECT_NOTIFIER,
    appUrl: c.CONNECT_APP_URL,
    reminderOffsets: c.CONNECT_REMINDERS,
    logLevel: c.LOG_LEVEL,
    corsOrigins: c.CONNECT_CORS_ORIGINS,
    trustedProxies: c.CONNECT_TRUSTED_PROXIES,
    metricsToken: c.CONNECT_METRICS_TOKEN,
    smtpUrl: c.CONNECT_SMTP_URL,
    mailFrom: c.CONNECT_MAIL_FROM,
    publicApiUrl: c.CONNECT_PUBLIC_API_URL ?? `http://localhost:${c.PORT}`,
    deliveryMaxAttempts: c.CONNECT_DELIVERY_MAX_ATTEMPTS,
    deliveryConcurrency: c.CONNECT_DELIVERY_CONCURRENCY,
    vapidPublicKey: c.CONNECT_VAPID_PUBLIC_KEY,
    vapidPrivateKey: c.CONNECT_VAPID_PRIVATE_KEY,
    vapidSubject: c.CONNECT_VAPID_SUBJECT,
    twilio:
      c.CONNECT_TWILIO_ACCOUNT_SID && c.CONNECT_TWILIO_AUTH_TOKEN && c.CONNECT_TWILIO_FROM
        ? {
            accountSid: c.CONNECT_TWILIO_ACCOUNT_SID,
            authToken: c.CONNECT_TWILIO_AUTH_TOKEN,
            from: c.CONNECT_TWILIO_FROM,
            apiUrl: c.CONNECT_TWILIO_API_URL,
          }
        : undefined,
    oidcProviders,
    authRedirectUrls: c.CONNECT_AUTH_REDIRECT_URLS,
    walArchive: c.CONNECT_WAL_ARCHIVE === undefined ? undefined : path.resolve(c.CONNECT_WAL_ARCHIVE),
    backups:
      c.CONNECT_BACKUP_SCHEDULE && c.CONNECT_BACKUP_DIR
        ? {
            schedule: c.CONNECT_BACKUP_SCHEDULE,
            dir: path.resolve(c.CONNECT_BACKUP_DIR),
            keep: c.CONNECT_BACKUP_KEEP,
          }
        : undefined,
  };
}

const isLoopback = (hostname: string) =>
  hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);

/**
 * CONNECT_AUTH_REDIRECT_URLS: absolute URLs without a fragment, http(s) or an app's private-use
 * scheme (RFC 8252, e.g. com.example.app:/oauth); a message when one is not.
 */
export function parseRedirectUrls(text: string): string[] | string {
  const urls: string[] = [];
  for (const part of text.split(',').map((item) => item.trim())) {
    if (part === '') continue;
    const url = URL.canParse(part) ? new URL(part) : new URL('invalid:');
    const scheme = url.protocol.slice(0, -1);
    const usable =
      scheme === 'https' || scheme === 'http' || /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+$/.test(scheme);
    if (!usable || url.hash !== '') {
      return `"${part}" must be an absolute http(s) URL, or one of an app's own reverse-domain scheme, without a #fragment`;
    }
    urls.push(url.href);
  }
  return urls;
}

const OIDC_VARIABLE = /^CONNECT_OIDC_(.+)_(ISSUER|CLIENT_ID|CLIENT_SECRET)$/;
const OIDC_SETTINGS = ['ISSUER', 'CLIENT_ID', 'CLIENT_SECRET'] as const;

/** CONNECT_OIDC_<NAME>_ISSUER, _CLIENT_ID and _CLIENT_SECRET: all three or none, per provider. */
export function parseOidcProviders(env: Record<string, string | undefined>): OidcProviderConfig[] {
  const byName = new Map<string, Partial<Record<(typeof OIDC_SETTINGS)[number], string>>>();
  for (const [variable, value] of Object.entries(env)) {
    const match = OIDC_VARIABLE.exec(variable);
    if (!match || value === undefined || value === '') continue;
    const [, name = '', setting = ''] = match;
    byName.set(name, { ...byName.get(name), [setting]: value });
  }
  const issues: { variable: string; message: string }[] = [];
  const providers: OidcProviderConfig[] = [];
  for (const [name, settings] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
    const prefix = `CONNECT_OIDC_${name}`;
    if (!/^[A-Z][A-Z0-9]{0,31}$/.test(name)) {
      issues.push({
        variable: `${prefix}_${Object.keys(settings)[0]}`,
        message:
          'the provider name (between CONNECT_OIDC_ and the setting) must be up to 32 letters and digits',
      });
      continue;
    }
    const missing = OIDC_SETTINGS.filter((setting) => settings[setting] === undefined);
    for (const setting of missing) {
      issues.push({
        variable: `${prefix}_${setting}`,
        message: `must be set along with the other ${prefix}_* variables (or unset them all)`,
      });
    }
    const { ISSUER: issuer, CLIENT_ID: clientId, CLIENT_SECRET: clientSecret } = settings;
    if (issuer !== undefined) {
      const url = URL.canParse(issuer) ? new URL(issuer) : undefined;
      const secure = url?.protocol === 'https:' || (url?.protocol === 'http:' && isLoopback(url.hostname));
      if (!url || !secure || url.search !== '' || url.hash !== '') {
        issues.push({
          variable: `${prefix}_ISSUER`,
          message: 'must be an https:// URL (http:// only on a loopback address) without query or fragment',
        });
      }
    }
    if (clientId !== undefined && clientId.length > 500) {
      issues.push({ variable: `${prefix}_CLIENT_ID`, message: 'must be at most 500 characters' });
    }
    if (issuer && clientId && clientSecret && missing.length === 0) {
      providers.push({ name: name.toLowerCase(), issuer, clientId, clientSecret });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return providers;
}
