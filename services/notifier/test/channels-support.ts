// Receivers for the delivery channels, on 127.0.0.1: an SMTP server that parses what it is sent,
// and a stand-in for a browser's push service that decrypts each message with the browser's keys.
import { createECDH, type ECDH, randomBytes } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

const ece = createRequire(import.meta.url)('http_ece') as {
  decrypt(body: Buffer, params: { version: string; privateKey: ECDH; authSecret: string }): Buffer;
};

export interface Mail {
  /** The envelope's recipients. */
  to: string[];
  parsed: ParsedMail;
  /** When it arrived (ms since the epoch). */
  at: number;
}

export interface SmtpInbox {
  url: string;
  mails: Mail[];
  close(): Promise<void>;
}

/** An SMTP server that takes every message (no auth, no TLS) and keeps it parsed. */
export async function smtpInbox(): Promise<SmtpInbox> {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    closeTimeout: 100,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (parsed) => {
          mails.push({ to: session.envelope.rcptTo.map((rcpt) => rcpt.address), parsed, at: Date.now() });
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
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface PushMessage {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

/** A browser's push subscription: what it posts to /v1/push-subscriptions, and its private key. */
export interface Browser {
  subscription: { endpoint: string; keys: { p256dh: string; auth: string } };
  path: string;
  /** The messages its push service received for it, decrypted as the browser would. */
  messages(): { payload: unknown; headers: http.IncomingHttpHeaders; at: number }[];
}

export interface PushService {
  received: PushMessage[];
  /** A new browser (key pair and auth secret) with an endpoint at this push service. */
  browser(): Browser;
  close(): Promise<void>;
}

/** A push service that accepts every message (201) and keeps it for the browser to decrypt. */
export async function pushService(): Promise<PushService> {
  const received: PushMessage[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        path: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks),
        at: Date.now(),
      });
      response.writeHead(201).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    received,
    browser() {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16).toString('base64url');
      const path = `/push/${randomBytes(6).toString('hex')}`;
      return {
        subscription: {
          endpoint: `${base}${path}`,
          keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth },
        },
        path,
        messages: () =>
          received
            .filter((message) => message.path === path)
            .map(({ body, headers, at }) => ({
              payload: JSON.parse(
                ece
                  .decrypt(body, { version: 'aes128gcm', privateKey: ecdh, authSecret: auth })
                  .toString('utf8'),
              ) as unknown,
              headers,
              at,
            })),
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
