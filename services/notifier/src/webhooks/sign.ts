// Standard Webhooks signatures (https://www.standardwebhooks.com): an HMAC-SHA256 of
// `${webhook-id}.${webhook-timestamp}.${body}`, keyed by the secret's bytes, sent as `v1,<base64>`.
import { createHmac, randomBytes } from 'node:crypto';

const PREFIX = 'whsec_';

/** A new endpoint secret: `whsec_` and the base64 of 32 random bytes. */
export function generateSecret(): string {
  return `${PREFIX}${randomBytes(32).toString('base64')}`;
}

function secretBytes(secret: string): Buffer {
  const encoded = secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret;
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.length < 16) throw new Error('a webhook secret holds at least 16 bytes');
  return bytes;
}

/** The `webhook-signature` header's value. `timestamp` is in seconds since the epoch. */
export function signWebhook(secret: string, webhookId: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secretBytes(secret)).update(`${webhookId}.${timestamp}.${body}`);
  return `v1,${mac.digest('base64')}`;
}

/** The three Standard Webhooks headers of a message sent at `now`. */
export function webhookHeaders(
  secret: string,
  webhookId: string,
  now: Date,
  body: string,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  const timestamp = Math.floor(now.getTime() / 1000);
  return {
    'webhook-id': webhookId,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signWebhook(secret, webhookId, timestamp, body),
  };
}
