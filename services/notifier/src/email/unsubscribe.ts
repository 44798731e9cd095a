// One-click unsubscribe (RFC 8058): each email carries a link whose token says, signed, whose
// email of which kind to turn off. The HMAC key is made once in the data directory.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { readOrCreateSecretFile } from '@connect/db';
import { NOTIFICATION_KINDS, type NotificationKind } from '../notification.ts';

export interface Unsubscription {
  userId: string;
  kind: NotificationKind;
}

export interface UnsubscribeTokens {
  sign(unsubscription: Unsubscription): string;
  /** What a token asks to turn off, or undefined when it is malformed or not ours. */
  verify(token: string): Unsubscription | undefined;
}

export const UNSUBSCRIBE_KEY_FILE = 'unsubscribe-key';

export async function loadUnsubscribeTokens(dataDir: string): Promise<UnsubscribeTokens> {
  const key = await readOrCreateSecretFile(path.join(dataDir, UNSUBSCRIBE_KEY_FILE), () =>
    randomBytes(32).toString('base64url'),
  );
  return unsubscribeTokens(Buffer.from(key.trim(), 'base64url'));
}

const TOKEN = /^([0-9a-f-]{36})\.([a-z]+)\.([A-Za-z0-9_-]{43})$/;

/** Tokens `<userId>.<kind>.<HMAC-SHA256 of both>`: no expiry, as a mailbox keeps old emails. */
export function unsubscribeTokens(key: Uint8Array): UnsubscribeTokens {
  const mac = (userId: string, kind: string) =>
    createHmac('sha256', key).update(`unsubscribe\n${userId}\n${kind}`).digest();
  return {
    sign: ({ userId, kind }) => `${userId}.${kind}.${mac(userId, kind).toString('base64url')}`,
    verify(token) {
      const match = TOKEN.exec(token);
      if (!match) return undefined;
      const [, userId = '', kind = '', signature = ''] = match;
      const given = Buffer.from(signature, 'base64url');
      const expected = mac(userId, kind);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      if (!(NOTIFICATION_KINDS as readonly string[]).includes(kind)) return undefined;
      return { userId, kind: kind as NotificationKind };
    },
  };
}

/** The link an email's List-Unsubscribe header points at: `POST` it to unsubscribe. */
export function unsubscribeUrl(apiUrl: string, token: string): string {
  return `${apiUrl.replace(/\/+$/, '')}/v1/unsubscribe?token=${encodeURIComponent(token)}`;
}
