// Account mail: the emails that prove a person reads an address (verify it, recover the account,
// move the account to it), the notice an address gets when its account asks to move away, and the
// invitation an address without an account gets when someone invites it to a commitment.
// The command service adds a job in the transaction of the request; the worker runs it, and only
// then makes the token: it stores the token's SHA-256 and puts the token itself in the mail, so no
// queue row, log or event ever holds a usable token. A mail that cannot be sent takes its token
// back and is retried.
import { createHash, randomBytes } from 'node:crypto';
import type { Database } from '@connect/db';
import type { Task } from 'graphile-worker';
import { type Kysely, sql } from 'kysely';
import nodemailer from 'nodemailer';
import { type EmailContent, escapeHtml } from './templates.ts';

export const ACCOUNT_MAIL_TASK = 'send-account-mail';

export type AccountTokenPurpose = 'verify-email' | 'recover' | 'change-email';

/** How long a mailed token can be used. */
export const ACCOUNT_TOKEN_SECONDS: Record<AccountTokenPurpose, number> = {
  'verify-email': 48 * 3600,
  recover: 3600,
  'change-email': 3600,
};

/**
 * A job's payload. `email` is the address it goes to: the account's for verify-email, the address
 * asked about for recover (the worker looks the account up), the new one for change-email, the
 * old one for email-change-notice (with `newEmail`, the address it is moving to), the invited
 * address for invite (with the pending invitation's id and what the mail says of it).
 */
export interface AccountMailJob {
  purpose: AccountTokenPurpose | 'email-change-notice' | 'invite';
  email: string;
  userId?: string;
  newEmail?: string;
  invitation?: { id: string; inviterName: string; title: string; role: string };
  /** When it was asked for (ISO 8601): a mail that could not go out for a day is dropped. */
  requestedAt: string;
}

const ACCOUNT_MAIL_ATTEMPTS = 10;
/** A recovery or a change nobody could mail within this long is no longer what the person waits for. */
const MAX_DELAY_MS = 24 * 3600 * 1000;

/** Adds the jobs in the caller's transaction (`db` is the transaction). */
export async function enqueueAccountMail(
  db: Kysely<Database>,
  jobs: readonly AccountMailJob[],
): Promise<void> {
  for (const job of jobs) {
    await sql`select graphile_worker.add_job(
      identifier => ${ACCOUNT_MAIL_TASK},
      payload => ${JSON.stringify(job)}::json,
      max_attempts => ${ACCOUNT_MAIL_ATTEMPTS}::int)`.execute(db);
  }
}

/** 256 random bits, base64url; the database keeps only `hash`. */
export function newAccountToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashAccountToken(token) };
}

export function hashAccountToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export interface AccountMail extends EmailContent {
  to: string;
  name: string;
}

export interface AccountMailer {
  /** Rejects when the server cannot be reached or refuses the message. */
  send(mail: AccountMail): Promise<void>;
  close(): void;
}

export function createAccountMailer(options: {
  smtpUrl: string;
  from: string;
  timeoutMs?: number;
  onError?: (error: Error) => void;
}): AccountMailer {
  const timeout = options.timeoutMs ?? 15_000;
  const transport = nodemailer.createTransport({
    url: options.smtpUrl,
    pool: true,
    maxConnections: 2,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  transport.on('error', (error) => options.onError?.(error));
  return {
    async send(mail) {
      await transport.sendMail({
        from: options.from,
        to: { name: mail.name, address: mail.to },
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        headers: { 'Auto-Submitted': 'auto-generated' },
      });
    },
    close: () => transport.close(),
  };
}

export interface AccountMailDeps {
  db: Kysely<Database>;
  mailer: AccountMailer;
  /** The web app's base URL (CONNECT_APP_URL): its /verify-email and /reset-password pages. */
  appUrl: string;
  now?: () => Date;
}

export type AccountMailOutcome = 'sent' | 'no-account' | 'stale';

/** An invitation by email, unless it was accepted, cancelled or voided, or has expired meanwhile. */
async function sendInvitationMail(
  deps: AccountMailDeps,
  job: AccountMailJob,
  now: Date,
): Promise<AccountMailOutcome> {
  const { invitation } = job;
  if (!invitation) return 'stale';
  const open = await deps.db
    .selectFrom('pending_invitations')
    .select('id')
    .where('id', '=', invitation.id)
    .where('accepted_at', 'is', null)
    .where('cancelled_at', 'is', null)
    .where('voided_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  if (!open) return 'stale';
  const link = `${deps.appUrl.replace(/\/+$/, '')}/signup?email=${encodeURIComponent(job.email)}`;
  await deps.mailer.send({
    to: job.email,
    name: '',
    ...renderAccountMail('invite', { name: '', link, ...invitation }),
  });
  return 'sent';
}

export function accountMailTask(deps: AccountMailDeps): Task {
  return async (payload) => {
    await sendAccountMail(deps, payload as AccountMailJob);
  };
}

export async function sendAccountMail(
  deps: AccountMailDeps,
  job: AccountMailJob,
): Promise<AccountMailOutcome> {
  const now = deps.now?.() ?? new Date();
  if (job.purpose !== 'verify-email' && now.getTime() - Date.parse(job.requestedAt) > MAX_DELAY_MS)
    return 'stale';
  if (job.purpose === 'invite') return sendInvitationMail(deps, job, now);
  const user = await deps.db
    .selectFrom('users')
    .select(['id', 'email', 'display_name', 'email_verified_at'])
    .$call((query) =>
      job.purpose === 'recover'
        ? query.where('email', '=', job.email)
        : query.where('id', '=', job.userId ?? ''),
    )
    .executeTakeFirst();
  if (!user) return 'no-account';
  const base = deps.appUrl.replace(/\/+$/, '');
  const name = user.display_name;

  if (job.purpose === 'email-change-notice') {
    await deps.mailer.send({
      to: job.email,
      name,
      ...renderAccountMail('email-change-notice', { name, newEmail: maskEmail(job.newEmail ?? '') }),
    });
    return 'sent';
  }
  if (job.purpose === 'verify-email' && (user.email !== job.email || user.email_verified_at)) return 'stale';
  if (job.purpose === 'change-email' && user.email === job.email) return 'stale';

  const purpose = job.purpose;
  const to = purpose === 'recover' ? user.email : job.email;
  const { token, hash } = newAccountToken();
  await deps.db
    .insertInto('account_tokens')
    .values({
      token_hash: hash,
      user_id: user.id,
      purpose,
      email: to,
      created_at: now,
      expires_at: new Date(now.getTime() + ACCOUNT_TOKEN_SECONDS[purpose] * 1000),
      used_at: null,
    })
    .execute();
  const page = purpose === 'recover' ? 'reset-password' : 'verify-email';
  const link = `${base}/${page}?token=${encodeURIComponent(token)}`;
  try {
    await deps.mailer.send({ to, name, ...renderAccountMail(purpose, { name, link }) });
  } catch (error) {
    await deps.db.deleteFrom('account_tokens').where('token_hash', '=', hash).execute();
    throw error;
  }
  return 'sent';
}

/** `ana@example.com` → `a**@example.com`: enough for the owner to recognise, little for others. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at < 1) return '***';
  const local = email.slice(0, at);
  return `${local[0]}${'*'.repeat(Math.min(Math.max(local.length - 1, 2), 8))}${email.slice(at)}`;
}

const oneLine = (text: string) => text.replace(/[\r\n\t]+/g, ' ').trim();

/** The subject, text and HTML of an account mail; pure, every value escaped in the HTML. */
export function renderAccountMail(
  purpose: AccountMailJob['purpose'],
  values: {
    name: string;
    link?: string;
    newEmail?: string;
    inviterName?: string;
    title?: string;
    role?: string;
  },
): EmailContent {
  const name = oneLine(values.name);
  const link = values.link ?? '';
  const inviter = oneLine(values.inviterName ?? 'Someone');
  const copy = {
    'verify-email': {
      subject: 'Confirm your email address',
      lines: ['Confirm that this is your address for Connect by opening this link within 48 hours:'],
      action: 'Confirm my address',
      after: 'If you did not create a Connect account, ignore this email.',
    },
    'change-email': {
      subject: 'Confirm your new email address',
      lines: [
        'You asked to use this address for your Connect account. The change applies once you open this link within an hour:',
      ],
      action: 'Use this address',
      after: 'If you did not ask for this, ignore this email: nothing changes.',
    },
    recover: {
      subject: 'Reset your Connect password',
      lines: [
        'Someone, hopefully you, asked to reset the password of the Connect account with this address. Choose a new password within an hour with this link (it works once):',
      ],
      action: 'Choose a new password',
      after: 'If you did not ask for this, ignore this email: your password stays as it is.',
    },
    'email-change-notice': {
      subject: 'Your Connect account is moving to another email address',
      lines: [
        `Someone signed in to your Connect account asked to move it to ${oneLine(values.newEmail ?? '')}. It moves once that address confirms the change.`,
        'If this was not you, change your password now (or reset it from the sign-in page): that ends every session and cancels the move.',
      ],
      action: undefined,
      after: 'You get this email because this address belongs to the account.',
    },
    invite: {
      subject: `${inviter} invited you to “${oneLine(values.title ?? '')}” on Connect`,
      lines: [
        `${inviter} invited you to “${oneLine(values.title ?? '')}” on Connect, as ${values.role === 'witness' ? 'a witness' : 'a participant'}. Sign up with this address to respond; the invitation waits for you for 30 days:`,
      ],
      action: 'Sign up to respond',
      after: `If you do not know ${inviter}, ignore this email: nothing happens unless you sign up.`,
    },
  }[purpose];
  const greeting = name === '' ? 'Hello,' : `Hello ${name},`;
  const text = [greeting, '', ...copy.lines, ...(copy.action ? ['', link] : []), '', copy.after].join('\n');
  const href = escapeHtml(link);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(copy.subject)}</title>
</head>
<body style="margin:0;padding:0;background:#f5f5f5;color:#1a1a1a;font:16px/1.5 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif">
<main style="max-width:560px;margin:0 auto;padding:24px;background:#ffffff">
<p style="margin:0 0 16px">${escapeHtml(greeting)}</p>
${copy.lines.map((line) => `<p style="margin:0 0 16px">${escapeHtml(line)}</p>`).join('\n')}
${
  copy.action
    ? `<p style="margin:24px 0"><a href="${href}" style="display:inline-block;padding:12px 20px;background:#1f4fd6;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:600">${escapeHtml(copy.action)}</a></p>
<p style="margin:0 0 16px;font-size:14px;color:#4a4a4a">Or copy this address into your browser: <a href="${href}" style="color:#1f4fd6">${href}</a></p>`
    : ''
}
<hr style="border:0;border-top:1px solid #dddddd;margin:24px 0">
<p style="margin:0;font-size:13px;color:#4a4a4a">${escapeHtml(copy.after)}</p>
</main>
</body>
</html>
`;
  return { subject: copy.subject, text, html };
}
