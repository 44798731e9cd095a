// The VAPID key pair (RFC 8292) that identifies this service to push services. A browser subscribes
// with the public key, so it must stay the same: it comes from CONNECT_VAPID_* or is made once into
// the data directory (shared by the command service, which hands it out, and the notifier).
import path from 'node:path';
import { readOrCreateSecretFile } from '@connect/db';
import webpush from 'web-push';

export interface VapidKeys {
  /** base64url of the 65-byte uncompressed P-256 point: the browser's applicationServerKey. */
  publicKey: string;
  /** base64url of the 32-byte P-256 private key. */
  privateKey: string;
  /** Who a push service may contact: a mailto: or https: URL. */
  subject: string;
}

export const VAPID_KEY_FILE = 'vapid-keys.json';
export const DEFAULT_VAPID_SUBJECT = 'mailto:no-reply@connect.local';

export interface VapidConfig {
  dataDir: string;
  vapidPublicKey?: string | undefined;
  vapidPrivateKey?: string | undefined;
  vapidSubject?: string | undefined;
}

export async function loadVapidKeys(config: VapidConfig): Promise<VapidKeys> {
  const subject = config.vapidSubject ?? DEFAULT_VAPID_SUBJECT;
  if (config.vapidPublicKey && config.vapidPrivateKey) {
    return { publicKey: config.vapidPublicKey, privateKey: config.vapidPrivateKey, subject };
  }
  const file = path.join(config.dataDir, VAPID_KEY_FILE);
  const text = await readOrCreateSecretFile(file, () => `${JSON.stringify(webpush.generateVAPIDKeys())}\n`);
  const stored = JSON.parse(text) as { publicKey?: unknown; privateKey?: unknown };
  if (typeof stored.publicKey !== 'string' || typeof stored.privateKey !== 'string') {
    throw new Error(`${file} does not hold a VAPID key pair ({publicKey, privateKey})`);
  }
  return { publicKey: stored.publicKey, privateKey: stored.privateKey, subject };
}
