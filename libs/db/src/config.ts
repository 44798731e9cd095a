import path from 'node:path';
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
  CONNECT_WEBHOOKS_ALLOW_PRIVATE: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((value) => value === 'true' || value === '1'),
  CONNECT_APP_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .transform((url) => url.replace(/\/+$/, ''))
    .default(DEFAULT_APP_URL),
  CONNECT_REMINDERS: z
    .string()
    .transform((text, ctx) => {
      const offsets = parseReminderOffsets(text);
      if (offsets === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be durations like "7d,1d,1h" (units w, d, h, m)' });
        return z.NEVER;
      }
      return offsets;
    })
    .default(DEFAULT_REMINDERS),
  CONNECT_SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
    .optional(),
  CONNECT_MAIL_FROM: z.string().min(3).default('Connect <no-reply@connect.local>'),
  CONNECT_PUBLIC_API_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .transform((url) => url.replace(/\/+$/, ''))
    .optional(),
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
  /** Whether webhooks may go to private, loopback or link-local addresses (tests, closed networks). */
  webhooksAllowPrivate: boolean;
  /** The web app's base URL (no trailing slash): links to a commitment are `${appUrl}/commitments/<id>`. */
  appUrl: string;
  /** When to remind the parties before a due date: seconds before it, largest first (CONNECT_REMINDERS). */
  reminderOffsets: number[];
  logLevel: z.infer<typeof configSchema>['LOG_LEVEL'];
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
    webhooksAllowPrivate: c.CONNECT_WEBHOOKS_ALLOW_PRIVATE,
    appUrl: c.CONNECT_APP_URL,
    reminderOffsets: c.CONNECT_REMINDERS,
    logLevel: c.LOG_LEVEL,
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
  };
}
