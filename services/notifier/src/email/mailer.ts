// Email over SMTP: a pooled nodemailer transport sending one notification to one person.
import nodemailer, { type SendMailOptions, type Transporter } from 'nodemailer';
import type { Notification } from '../notification.ts';
import { renderEmail } from './templates.ts';

export interface MailerOptions {
  /** smtp[s]://user:pass@host:port (CONNECT_SMTP_URL). */
  smtpUrl: string;
  /** The From of every email (CONNECT_MAIL_FROM), e.g. `Connect <no-reply@example.com>`. */
  from: string;
  /** Connections kept open to the server; default 3. */
  maxConnections?: number;
  /** How long to wait for a connection, the greeting and each answer; default 15 s. */
  timeoutMs?: number;
  /** A failure of the transport outside any send (a send's own failure rejects it instead). */
  onError?: (error: Error) => void;
}

export interface Recipient {
  to: string;
  name: string;
  /** The one-click unsubscribe link of this notification's kind (unsubscribe.ts). */
  unsubscribeUrl: string;
}

export interface Mailer {
  /** Sends; rejects when the server cannot be reached or refuses the message. */
  send(notification: Notification, recipient: Recipient): Promise<{ messageId: string }>;
  close(): void;
}

/** The domain of a From address, for Message-IDs: `Connect <a@b.example>` → `b.example`. */
export function domainOf(from: string): string {
  const match = /@([A-Za-z0-9.-]+)>?\s*$/.exec(from.trim());
  if (!match?.[1]) throw new Error(`CONNECT_MAIL_FROM has no domain: ${from}`);
  return match[1].toLowerCase();
}

/**
 * The same notification always gets the same Message-ID, so a receiver drops a copy a retry
 * sent again.
 */
export function messageIdOf(notification: Pick<Notification, 'id'>, domain: string): string {
  return `<${notification.id.replace(/[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]/g, '-')}@${domain}>`;
}

/** Failures before any mail is spoken of (reaching the server): their words name no recipient. */
const CONNECTION_FAILURES = new Set(['ESOCKET', 'ECONNECTION', 'ETIMEDOUT', 'EDNS']);

/**
 * What a failed send is retried and logged with. A failure to reach the server keeps its words
 * (`connect ECONNREFUSED 127.0.0.1:25`); one the server answered keeps only the SMTP codes, since
 * its words often repeat the recipient's address (`550 5.1.1 <ana@example.com>: Recipient address
 * rejected`), which would otherwise stay in the job queue's last error and the logs.
 */
export function smtpFailure(error: unknown): Error {
  const { code, responseCode, command, message } = (error ?? {}) as {
    code?: unknown;
    responseCode?: unknown;
    command?: unknown;
    message?: unknown;
  };
  const parts = [code, command, responseCode].filter(
    (part) => typeof part === 'string' || typeof part === 'number',
  );
  const words = typeof code === 'string' && CONNECTION_FAILURES.has(code) && typeof message === 'string';
  return new Error(
    `the mail was not sent (SMTP ${parts.length > 0 ? parts.join(' ') : 'failure'})${words ? `: ${message}` : ''}`,
  );
}

export function createMailer(options: MailerOptions): Mailer {
  const domain = domainOf(options.from);
  const timeout = options.timeoutMs ?? 15_000;
  const transport = nodemailer.createTransport({
    url: options.smtpUrl,
    pool: true,
    maxConnections: options.maxConnections ?? 3,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  // Without a listener, an 'error' event would end the process.
  transport.on('error', (error) => options.onError?.(error));
  return {
    async send(notification, recipient) {
      const content = renderEmail(notification, recipient.name, { unsubscribeUrl: recipient.unsubscribeUrl });
      const messageId = messageIdOf(notification, domain);
      await sendOrFail(transport, {
        from: options.from,
        to: { name: recipient.name, address: recipient.to },
        subject: content.subject,
        text: content.text,
        html: content.html,
        messageId,
        date: new Date(notification.createdAt),
        headers: {
          'List-Unsubscribe': `<${recipient.unsubscribeUrl}>`,
          'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
          'Auto-Submitted': 'auto-generated',
        },
      });
      return { messageId };
    },
    close: () => transport.close(),
  };
}

/** Sends, or throws what smtpFailure keeps of the failure. */
export async function sendOrFail(transport: Transporter, mail: SendMailOptions): Promise<void> {
  try {
    await transport.sendMail(mail);
  } catch (error) {
    throw smtpFailure(error);
  }
}
