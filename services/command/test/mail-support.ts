// A real SMTP server on loopback and the notifier's delivery worker sending account mail to it.
import type { AddressInfo } from 'node:net';
import { type DeliveryQueue, openDeliveryQueue } from '@connect/notifier';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { TestApp } from './support.ts';

export const APP_URL = 'https://app.connect.test';

export interface Mail {
  to: string;
  subject: string;
  text: string;
  html: string;
}

export interface Inbox {
  url: string;
  mails: Mail[];
  /** The next mail to `to` not taken yet, waiting for it up to `ms`. */
  next(to: string, ms?: number): Promise<Mail>;
  close(): Promise<void>;
}

export async function smtpInbox(): Promise<Inbox> {
  const mails: Mail[] = [];
  const taken = new Set<Mail>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (parsed: ParsedMail) => {
          for (const to of session.envelope.rcptTo) {
            mails.push({
              to: to.address,
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html: typeof parsed.html === 'string' ? parsed.html : '',
            });
          }
          callback();
        },
        (error: Error) => callback(error),
      );
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    async next(to, ms = 15_000) {
      const until = Date.now() + ms;
      for (;;) {
        const mail = mails.find((m) => m.to === to && !taken.has(m));
        if (mail) {
          taken.add(mail);
          return mail;
        }
        if (Date.now() > until) throw new Error(`no mail to ${to} within ${ms} ms`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The notifier's queue on the test app's database, mailing through `smtpUrl` (unset: no SMTP). */
export async function mailWorker(
  t: TestApp,
  smtpUrl: string | undefined,
  log?: { warn: (object: object, message: string) => void },
): Promise<DeliveryQueue> {
  const queue = await openDeliveryQueue({
    pool: t.database.pool,
    db: t.database.db,
    cipher: t.deps.ledger.cipher,
    config: {
      smtpUrl,
      mailFrom: 'Connect <no-reply@connect.test>',
      dataDir: t.deps.dataDir,
      publicApiUrl: 'https://api.connect.test',
      appUrl: APP_URL,
      twilio: undefined,
      webhooksAllowPrivate: true,
      deliveryMaxAttempts: 3,
      deliveryConcurrency: 2,
    },
    pollInterval: 200,
    requeueWaitingMailEvery: 200,
  });
  const quiet = () => {};
  await queue.start({ error: quiet, info: quiet, debug: quiet, warn: log?.warn ?? quiet });
  return queue;
}

/** The token of the link in a mail (in its text and, the same, in its HTML). */
export function tokenIn(mail: Mail, page: 'verify-email' | 'reset-password'): string {
  const match = new RegExp(`${APP_URL}/${page}\\?token=([A-Za-z0-9_-]{43})`).exec(mail.text);
  if (!match?.[1]) throw new Error(`no ${page} link in: ${mail.text}`);
  if (!mail.html.includes(match[0])) throw new Error('the HTML body has another link');
  return match[1];
}
