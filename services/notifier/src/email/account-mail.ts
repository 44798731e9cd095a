// Account mail: the emails that prove a person reads an address (verify it, recover the account,
// move the account to it), the notice an address gets when its account asks to move away, and the
// invitation an address without an account gets when someone invites it to a commitment.
// The command service adds a job in the transaction of the request; the worker runs it, and only
// then makes the token: it stores the token's SHA-256 and puts the token itself in the mail, so no
// queue row, log or event ever holds a usable token. A mail that cannot be sent takes its token
// back and is retried. No job holds an address in the clear either: an account is named by its id
// or by the blind index of its address, and an address that is not the account's own is sealed
// under the account's key (so erasing the account shreds it in the queue as well).
import { createHash, randomBytes } from 'node:crypto';
import {
  accountTokenEmailPlace,
  type Database,
  type FieldCipher,
  INVITATIONS_SUBJECT,
  invitationEmailPlace,
  openUserEmails,
  UUID_TEXT_PATTERN,
  userSubject,
} from '@connect/db';
import type { Task } from 'graphile-worker';
import { type Kysely, sql } from 'kysely';
import nodemailer from 'nodemailer';
import { sendOrFail } from './mailer.ts';
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
 * What a mail is asked for with. The account is `userId`, or for recover the one whose address
 * has the blind index `emailIndex` (the worker looks it up). `emailIndex` is also the address
 * verify-email was asked for (stale once the account has another) and the new address of
 * change-email. `to` is where it goes when not the account's own address: the new one for
 * change-email, the old one for email-change-notice (with `newEmail`, where it is moving to). An
 * invite goes to the pending invitation's address, read (sealed) from its row.
 */
export interface AccountMailRequest {
  purpose: AccountTokenPurpose | 'email-change-notice' | 'invite';
  userId?: string;
  emailIndex?: Uint8Array;
  to?: string;
  newEmail?: string;
  invitation?: { id: string; inviterName: string; title: string; role: string };
  /** When it was asked for (ISO 8601): a mail that could not go out for a day is dropped. */
  requestedAt: string;
}

/** An invitation as its job carries it: who invited to what sealed (base64) as one value. */
interface JobInvitation {
  id: string;
  role: string;
  sealed?: string;
  /** In the clear: only in jobs queued before they were sealed. */
  inviterName?: string;
  title?: string;
}

/** A job's payload: the request, its index in base64 and its addresses and invitation sealed (base64). */
export interface AccountMailJob extends Omit<AccountMailRequest, 'emailIndex' | 'invitation'> {
  emailIndex?: string;
  /** An address in the clear: only in jobs queued before migration 029. */
  email?: string;
  invitation?: JobInvitation;
}

/** Where an invitation mail's inviter and title are sealed. */
const invitationPlace = (id: string) => `account_mail:invite:${id}`;

/** Where an address a job carries is sealed: its account, purpose, time and field. */
const jobPlace = (job: AccountMailJob, field: 'to' | 'newEmail') =>
  `account_mail:${job.userId}:${job.purpose}:${job.requestedAt}:${field}`;

async function sealJob(fields: FieldCipher, request: AccountMailRequest): Promise<AccountMailJob> {
  const { emailIndex, to, newEmail, invitation, ...rest } = request;
  const job: AccountMailJob = {
    ...rest,
    ...(emailIndex ? { emailIndex: Buffer.from(emailIndex).toString('base64') } : {}),
  };
  if (invitation) {
    const { id, role, inviterName, title } = invitation;
    const [sealed] = await fields.seal([
      { subject: INVITATIONS_SUBJECT, place: invitationPlace(id), value: { inviterName, title } },
    ]);
    job.invitation = { id, role, ...(sealed ? { sealed: sealed.toString('base64') } : {}) };
  }
  const named = (['to', 'newEmail'] as const).filter((field) => request[field] !== undefined);
  if (named.length > 0 && !job.userId)
    throw new Error('an address in account mail is sealed under its account');
  const sealed = await fields.seal(
    named.map((field) => ({
      subject: userSubject(job.userId ?? ''),
      place: jobPlace(job, field),
      value: request[field],
    })),
  );
  named.forEach((field, i) => {
    const value = sealed[i];
    if (value) job[field] = value.toString('base64');
  });
  return job;
}

/** An address the job carries; undefined when its account's key is erased (or it has none). */
async function openJobAddress(
  fields: FieldCipher,
  job: AccountMailJob,
  field: 'to' | 'newEmail',
): Promise<string | undefined> {
  // A job queued before migration 029 holds its addresses in the clear (`email`, `newEmail`).
  if (job.email !== undefined) return field === 'to' ? job.email : job.newEmail;
  const stored = job[field];
  if (stored === undefined) return undefined;
  const [address] = await fields.open<string>([
    {
      subject: userSubject(job.userId ?? ''),
      place: jobPlace(job, field),
      stored: Buffer.from(stored, 'base64'),
    },
  ]);
  return address;
}

const ACCOUNT_MAIL_ATTEMPTS = 10;
/** A recovery or a change nobody could mail within this long is no longer what the person waits for. */
const MAX_DELAY_MS = 24 * 3600 * 1000;

/** Adds the jobs in the caller's transaction (`db` is the transaction). */
export async function enqueueAccountMail(
  db: Kysely<Database>,
  fields: FieldCipher,
  requests: readonly AccountMailRequest[],
): Promise<void> {
  for (const request of requests) {
    await sql`select graphile_worker.add_job(
      identifier => ${ACCOUNT_MAIL_TASK},
      payload => ${JSON.stringify(await sealJob(fields, request))}::json,
      max_attempts => ${ACCOUNT_MAIL_ATTEMPTS}::int)`.execute(db);
  }
}

/**
 * The task of a worker without SMTP: the job leaves the queue for account_mail_waiting (migration
 * 033), where no job fetch has to step past it. One statement removes the job and keeps its mail,
 * so a crash cannot leave both (graphile-worker's completion then finds nothing to remove). The
 * account the mail is for (by id, or for a recovery by the blind index of its address) is locked
 * as the erasure locks it: mail for an account erased meanwhile, or for none, is dropped.
 */
export function waitForSmtpTask(db: Kysely<Database>): Task {
  return async (_payload, helpers) => {
    await sql`
      with job as (
        delete from graphile_worker._private_jobs where id = ${helpers.job.id}::bigint
        returning id, payload
      ), account as (
        select erased_at from users
        where id = (select (payload->>'userId')::uuid from job where payload->>'userId' ~* ${UUID_TEXT_PATTERN})
           or email_index = (select decode(payload->>'emailIndex', 'base64') from job
                             where payload->>'userId' is null)
        for share
      )
      insert into account_mail_waiting (job_id, payload)
      select id, payload from job
      where not exists (select from account where erased_at is not null)
        and (payload->>'userId' is not null or payload->>'emailIndex' is null or exists (select from account))`.execute(
      db,
    );
  };
}

/** Puts every waiting account mail back into the queue, in one statement; returns how many. */
export async function requeueWaitingAccountMail(db: Kysely<Database>): Promise<number> {
  const { rows } = await sql<{ jobs: number }>`
    with moved as (delete from account_mail_waiting returning job_id, payload),
    specs as (
      select array_agg(
        (${ACCOUNT_MAIL_TASK}::text, payload::json, null, null, ${ACCOUNT_MAIL_ATTEMPTS}::int, null, null, null)
          ::graphile_worker.job_spec
        order by job_id) as specs
      from moved
    )
    select count(*)::int as jobs from specs, graphile_worker.add_jobs(specs.specs)
    where specs.specs is not null`.execute(db);
  return rows[0]?.jobs ?? 0;
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
      await sendOrFail(transport, {
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
  /** Opens the addresses of accounts, invitations and jobs; seals the one a token records. */
  fields: FieldCipher;
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
    .select(['id', 'email', 'email_sealed'])
    .where('id', '=', invitation.id)
    .where('accepted_at', 'is', null)
    .where('cancelled_at', 'is', null)
    .where('voided_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  if (!open) return 'stale';
  const [to] = open.email_sealed
    ? await deps.fields.open<string>([
        { subject: INVITATIONS_SUBJECT, place: invitationEmailPlace(open.id), stored: open.email_sealed },
      ])
    : [open.email ?? undefined];
  if (!to) return 'stale';
  const [named] = invitation.sealed
    ? await deps.fields.open<{ inviterName: string; title: string }>([
        {
          subject: INVITATIONS_SUBJECT,
          place: invitationPlace(invitation.id),
          stored: Buffer.from(invitation.sealed, 'base64'),
        },
      ])
    : [{ inviterName: invitation.inviterName, title: invitation.title }];
  const link = `${deps.appUrl.replace(/\/+$/, '')}/signup?email=${encodeURIComponent(to)}`;
  await deps.mailer.send({
    to,
    name: '',
    ...renderAccountMail('invite', { name: '', link, role: invitation.role, ...named }),
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
  const emailIndex = job.emailIndex === undefined ? undefined : Buffer.from(job.emailIndex, 'base64');
  // A recovery queued before migration 029 names its account by an address no column holds now.
  if (job.purpose === 'recover' && !emailIndex) return 'stale';
  const user = await deps.db
    .selectFrom('users')
    .select(['id', 'email', 'email_index', 'email_sealed', 'display_name', 'email_verified_at'])
    .$call((query) =>
      job.purpose === 'recover' && emailIndex
        ? query.where('email_index', '=', emailIndex)
        : query.where('id', '=', job.userId ?? ''),
    )
    .where('erased_at', 'is', null)
    .executeTakeFirst();
  if (!user) return 'no-account';
  const base = deps.appUrl.replace(/\/+$/, '');
  const name = user.display_name;
  const sameIndex = (index: Uint8Array | undefined) =>
    index !== undefined && user.email_index !== null && Buffer.from(user.email_index).equals(index);

  if (job.purpose === 'email-change-notice') {
    const to = await openJobAddress(deps.fields, job, 'to');
    if (!to) return 'no-account';
    const newEmail = (await openJobAddress(deps.fields, job, 'newEmail')) ?? '';
    await deps.mailer.send({
      to,
      name,
      ...renderAccountMail('email-change-notice', { name, newEmail: maskEmail(newEmail) }),
    });
    return 'sent';
  }
  if (job.purpose === 'verify-email' && ((emailIndex && !sameIndex(emailIndex)) || user.email_verified_at))
    return 'stale';
  if (job.purpose === 'change-email' && sameIndex(emailIndex)) return 'stale';

  const purpose = job.purpose;
  const [own] = await openUserEmails(deps.fields, [user]);
  const to = purpose === 'change-email' ? await openJobAddress(deps.fields, job, 'to') : own;
  const index = purpose === 'change-email' ? emailIndex : (user.email_index ?? undefined);
  if (!to || !index) return 'stale';
  const { token, hash } = newAccountToken();
  const [sealed] = await deps.fields.seal([
    { subject: userSubject(user.id), place: accountTokenEmailPlace(hash), value: to },
  ]);
  await deps.db
    .insertInto('account_tokens')
    .values({
      token_hash: hash,
      user_id: user.id,
      purpose,
      email_index: index,
      email_sealed: sealed ?? null,
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
