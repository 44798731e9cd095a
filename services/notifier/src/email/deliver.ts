// Delivering one notification by email: to its recipient's address, if they want this kind by
// email, with a one-click unsubscribe link. A job handler calls `deliver` and nothing else.
import { type Database, type FieldCipher, openUserEmails } from '@connect/db';
import type { Kysely } from 'kysely';
import type { Notification } from '../notification.ts';
import { wants } from '../preferences.ts';
import { createMailer, type Mailer } from './mailer.ts';
import { loadUnsubscribeTokens, type UnsubscribeTokens, unsubscribeUrl } from './unsubscribe.ts';

export type EmailOutcome = 'sent' | 'not-wanted' | 'no-recipient';

export interface EmailChannel {
  /** Sends the notification; rejects when the SMTP server fails, so the job is retried. */
  deliver(notification: Notification): Promise<EmailOutcome>;
  close(): void;
}

export interface EmailChannelDeps {
  db: Kysely<Database>;
  /** Opens the recipients' addresses. */
  fields: FieldCipher;
  mailer: Mailer;
  tokens: UnsubscribeTokens;
  /** The public base URL of the command API, which serves POST /v1/unsubscribe. */
  apiUrl: string;
}

export function emailChannel({ db, fields, mailer, tokens, apiUrl }: EmailChannelDeps): EmailChannel {
  return {
    async deliver(notification) {
      const user = await db
        .selectFrom('users')
        .select(['id', 'email', 'email_sealed', 'display_name'])
        .where('id', '=', notification.recipientId)
        .executeTakeFirst();
      const [to] = user ? await openUserEmails(fields, [user]) : [];
      if (!user || !to) return 'no-recipient';
      if (!(await wants(db, notification.recipientId, 'email', notification.kind))) return 'not-wanted';
      const token = tokens.sign({ userId: notification.recipientId, kind: notification.kind });
      await mailer.send(notification, {
        to,
        name: user.display_name,
        unsubscribeUrl: unsubscribeUrl(apiUrl, token),
      });
      return 'sent';
    },
    close: () => mailer.close(),
  };
}

/** The email channel from the configuration, or undefined while CONNECT_SMTP_URL is unset. */
export async function emailChannelFromConfig(
  config: { smtpUrl: string | undefined; mailFrom: string; dataDir: string },
  deps: { db: Kysely<Database>; fields: FieldCipher; apiUrl: string },
): Promise<EmailChannel | undefined> {
  if (!config.smtpUrl) return undefined;
  return emailChannel({
    ...deps,
    mailer: createMailer({ smtpUrl: config.smtpUrl, from: config.mailFrom }),
    tokens: await loadUnsubscribeTokens(config.dataDir),
  });
}
