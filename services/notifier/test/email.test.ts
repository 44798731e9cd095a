import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer as createNetServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { clearFields } from '@connect/db';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { emailChannel } from '../src/email/deliver.ts';
import { createMailer, domainOf, messageIdOf } from '../src/email/mailer.ts';
import { renderEmail } from '../src/email/templates.ts';
import {
  loadUnsubscribeTokens,
  UNSUBSCRIBE_KEY_FILE,
  unsubscribeTokens,
  unsubscribeUrl,
} from '../src/email/unsubscribe.ts';
import type { Notification } from '../src/notification.ts';
import { setPreferences } from '../src/preferences.ts';

const notification = (overrides: Partial<Notification> = {}): Notification => ({
  id: `n-${randomUUID()}`,
  recipientId: randomUUID(),
  kind: 'invitation',
  title: 'Ana invited you to “Paint the fence”',
  body: 'Ana asks you to take part as a participant.\n\nDue 1 June 2031.',
  link: 'https://app.connect.example/commitments/0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  commitmentId: '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  ledgerIndex: 42,
  createdAt: '2031-05-01T10:00:00.000Z',
  ...overrides,
});

interface Inbox {
  url: string;
  mails: { envelopeTo: string[]; parsed: ParsedMail }[];
  next(): Promise<ParsedMail>;
  close(): Promise<void>;
}

async function smtpInbox(): Promise<Inbox> {
  const mails: Inbox['mails'] = [];
  const waiting: ((mail: ParsedMail) => void)[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (parsed) => {
          mails.push({ envelopeTo: session.envelope.rcptTo.map((to) => to.address), parsed });
          waiting.shift()?.(parsed);
          callback();
        },
        (error: Error) => callback(error),
      );
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  let seen = 0;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    next: () =>
      new Promise((resolve) => {
        const already = mails[seen];
        seen += 1;
        if (already) resolve(already.parsed);
        else waiting.push(resolve);
      }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const header = (mail: ParsedMail, name: string) =>
  mail.headerLines
    .find((line) => line.key === name)
    ?.line.replace(/^[^:]+:\s*/, '')
    .replace(/\r?\n\s+/g, ' ');

let inbox: Inbox;
let database: TestDatabase;
let dataDir: string;
beforeAll(async () => {
  inbox = await smtpInbox();
  database = await createTestDatabase({ poolSize: 3 });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-email-'));
});
afterAll(async () => {
  await inbox.close();
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('a template escapes every value it puts into HTML and greets the person by name', () => {
  const evil = notification({
    title: 'Ben <script>alert(1)</script> & "co"',
    body: "Terms: <b>bold</b> & 'quoted'",
  });
  const email = renderEmail(evil, 'Zoë <img src=x onerror=alert(1)>', {
    unsubscribeUrl: 'https://api.example/v1/unsubscribe?token=a&b',
  });
  expect(email.subject).toBe('Ben <script>alert(1)</script> & "co"');
  expect(email.html).not.toMatch(/<script|<img|<b>/);
  expect(email.html).toContain('Ben &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;co&quot;');
  expect(email.html).toContain('Terms: &lt;b&gt;bold&lt;/b&gt; &amp; &#39;quoted&#39;');
  expect(email.html).toContain('Hello Zoë &lt;img src=x onerror=alert(1)&gt;,');
  expect(email.html).toContain(`href="${evil.link}"`);
  expect(email.html).toContain('href="https://api.example/v1/unsubscribe?token=a&amp;b"');
  expect(email.html).toMatch(/<html lang="en">/);
  expect(email.text).toContain('Hello Zoë <img src=x onerror=alert(1)>,');
  expect(email.text).toContain(evil.link);
  expect(email.text).toContain('Stop emails about invitations: https://api.example/v1/unsubscribe?token=a&b');
});

test('a template links only to web addresses and keeps the subject on one line', () => {
  const email = renderEmail(notification({ link: 'javascript:alert(1)', title: 'Hi\r\nBcc: x@y' }), 'Ana');
  expect(email.html).not.toContain('javascript:');
  expect(email.subject).toBe('Hi Bcc: x@y');
});

test('the mailer sends text and HTML with a stable Message-ID and one-click unsubscribe headers', async () => {
  const mailer = createMailer({ smtpUrl: inbox.url, from: 'Connect <no-reply@connect.example>' });
  try {
    const sent = notification();
    const unsubscribe = 'https://api.connect.example/v1/unsubscribe?token=abc.def';
    const first = await mailer.send(sent, {
      to: 'ben@example.com',
      name: 'Ben',
      unsubscribeUrl: unsubscribe,
    });
    const mail = await inbox.next();
    expect(first.messageId).toBe(`<${sent.id}@connect.example>`);
    expect(mail.messageId).toBe(first.messageId);
    expect(mail.subject).toBe(sent.title);
    expect(mail.text).toContain('Hello Ben,');
    expect(mail.text).toContain(sent.link);
    expect(mail.html).toContain('Open in Connect');
    expect(mail.html).toContain(`href="${sent.link}"`);
    expect(mail.from?.value).toEqual([{ address: 'no-reply@connect.example', name: 'Connect' }]);
    const to = Array.isArray(mail.to) ? mail.to[0] : mail.to;
    expect(to?.value).toEqual([{ address: 'ben@example.com', name: 'Ben' }]);
    expect(header(mail, 'list-unsubscribe')).toBe(`<${unsubscribe}>`);
    expect(header(mail, 'list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
    expect(mail.date?.toISOString()).toBe(sent.createdAt);

    // A retry of the same notification carries the same Message-ID, so the receiver can drop it.
    await mailer.send(sent, { to: 'ben@example.com', name: 'Ben', unsubscribeUrl: unsubscribe });
    expect((await inbox.next()).messageId).toBe(first.messageId);
    const other = await mailer.send(notification(), {
      to: 'ben@example.com',
      name: 'Ben',
      unsubscribeUrl: unsubscribe,
    });
    expect((await inbox.next()).messageId).toBe(other.messageId);
    expect(other.messageId).not.toBe(first.messageId);
  } finally {
    mailer.close();
  }
});

test('with the SMTP server down, sending rejects and nothing crashes', async () => {
  const closed = createNetServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise((resolve) => closed.close(resolve));
  const mailer = createMailer({
    smtpUrl: `smtp://127.0.0.1:${port}`,
    from: 'no-reply@connect.example',
    timeoutMs: 2000,
  });
  try {
    await expect(
      mailer.send(notification(), {
        to: 'ben@example.com',
        name: 'Ben',
        unsubscribeUrl: 'https://x.example/u',
      }),
    ).rejects.toThrow();
  } finally {
    mailer.close();
  }
});

test('a recipient the server refuses fails the send with the SMTP codes, never the address it echoes', async () => {
  const refusing = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(address, _session, callback) {
      const refused = new Error(`<${address.address}>: Recipient address rejected`) as Error & {
        responseCode: number;
      };
      refused.responseCode = 550;
      callback(refused);
    },
  });
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
  const { port } = refusing.server.address() as AddressInfo;
  const mailer = createMailer({ smtpUrl: `smtp://127.0.0.1:${port}`, from: 'no-reply@connect.example' });
  try {
    const failure = await mailer
      .send(notification(), {
        to: 'secret.person@example.com',
        name: 'Ben',
        unsubscribeUrl: 'https://x.example/u',
      })
      .then(
        () => undefined,
        (error: Error) => error,
      );
    expect(failure?.message).toMatch(/SMTP .*550/);
    expect(JSON.stringify({ message: failure?.message, stack: failure?.stack })).not.toContain(
      'secret.person',
    );
  } finally {
    mailer.close();
    await new Promise((resolve) => refusing.close(() => resolve(undefined)));
  }
});

test('Message-IDs use the From domain and only characters a Message-ID may hold', () => {
  expect(domainOf('Connect <No-Reply@Mail.Example.COM>')).toBe('mail.example.com');
  expect(domainOf('bare@example.org')).toBe('example.org');
  expect(() => domainOf('Connect')).toThrow(/CONNECT_MAIL_FROM/);
  expect(messageIdOf({ id: '12:ab cd@e' }, 'example.org')).toBe('<12-ab-cd-e@example.org>');
});

test('unsubscribe tokens verify only as signed, with a key made once in the data dir (0600)', async () => {
  const tokens = await loadUnsubscribeTokens(dataDir);
  const again = await loadUnsubscribeTokens(dataDir);
  expect((await stat(path.join(dataDir, UNSUBSCRIBE_KEY_FILE))).mode & 0o777).toBe(0o600);
  const userId = randomUUID();
  const token = tokens.sign({ userId, kind: 'reminder' });
  expect(again.verify(token)).toEqual({ userId, kind: 'reminder' });
  expect(tokens.verify(token.replace('.reminder.', '.dispute.'))).toBeUndefined();
  expect(tokens.verify(`${randomUUID()}${token.slice(36)}`)).toBeUndefined();
  expect(unsubscribeTokens(new Uint8Array(32)).verify(token)).toBeUndefined();
  expect(tokens.verify('garbage')).toBeUndefined();
  expect(unsubscribeUrl('https://api.example/', token)).toBe(
    `https://api.example/v1/unsubscribe?token=${encodeURIComponent(token)}`,
  );
});

test('the email channel sends what the recipient wants by email, and nothing else', async () => {
  const userId = randomUUID();
  await database.db
    .insertInto('users')
    .values({ id: userId, email: 'cleo@example.com', password_hash: 'x', display_name: 'Cléo' })
    .execute();
  const tokens = await loadUnsubscribeTokens(dataDir);
  const mailer = createMailer({ smtpUrl: inbox.url, from: 'Connect <no-reply@connect.example>' });
  // A row from before migration 029 (its address in the clear) is mailed as well.
  const channel = emailChannel({
    db: database.db,
    fields: clearFields,
    mailer,
    tokens,
    apiUrl: 'https://api.connect.example',
  });
  try {
    const before = inbox.mails.length;
    expect(await channel.deliver(notification({ recipientId: userId, kind: 'lifecycle' }))).toBe(
      'not-wanted',
    );
    expect(await channel.deliver(notification({ recipientId: randomUUID() }))).toBe('no-recipient');
    expect(await channel.deliver(notification({ recipientId: userId, kind: 'dispute' }))).toBe('sent');
    const mail = await inbox.next();
    expect(inbox.mails.length).toBe(before + 1);
    expect(mail.text).toContain('Hello Cléo,');
    const link = header(mail, 'list-unsubscribe')?.slice(1, -1) ?? '';
    const token = new URL(link).searchParams.get('token') ?? '';
    expect(link.startsWith('https://api.connect.example/v1/unsubscribe?token=')).toBe(true);
    expect(tokens.verify(token)).toEqual({ userId, kind: 'dispute' });

    await setPreferences(database.db, userId, { email: { dispute: false } });
    expect(await channel.deliver(notification({ recipientId: userId, kind: 'dispute' }))).toBe('not-wanted');
  } finally {
    channel.close();
  }
});
