// A stand-in for Twilio's Messages API on 127.0.0.1: it checks each request as Twilio documents it
// (path, HTTP Basic auth with the account SID and auth token, form-encoded To, From and Body) and
// answers like Twilio: 201 with the message resource (sid, status 'queued'), or Twilio's error JSON.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TwilioConfig } from '@connect/db';
import { isValidPhoneNumber } from 'libphonenumber-js/max';

export interface Sms {
  to: string;
  from: string;
  body: string;
}

export type Answer = { status: number; json?: unknown } | 'hang';

export interface FakeTwilio {
  config: TwilioConfig;
  /** Messages Twilio accepted (201). */
  messages: Sms[];
  /** What was wrong with requests that did not follow Twilio's API (none, when all is well). */
  problems: string[];
  /** Answers the next requests with these instead of accepting them. */
  answerNext(...answers: Answer[]): void;
  /** The next message accepted to `to`, waiting for it. */
  nextMessageTo(to: string): Promise<Sms>;
  close(): Promise<void>;
}

export const TEST_AUTH_TOKEN = `tok_${randomBytes(12).toString('hex')}_secret`;

export async function fakeTwilio(): Promise<FakeTwilio> {
  const accountSid = `AC${randomBytes(16).toString('hex')}`;
  const from = '+15005550006';
  const messages: Sms[] = [];
  const problems: string[] = [];
  const queued: Answer[] = [];
  const waiting: { to: string; resolve: (sms: Sms) => void }[] = [];
  const seen = new Set<Sms>();

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const send = (status: number, json: unknown) =>
        response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
      const next = queued.shift();
      if (next === 'hang') return;
      if (next) return send(next.status, next.json ?? {});

      const path = `/2010-04-01/Accounts/${accountSid}/Messages.json`;
      const expectedAuth = `Basic ${Buffer.from(`${accountSid}:${TEST_AUTH_TOKEN}`).toString('base64')}`;
      if (request.method !== 'POST' || request.url !== path) {
        problems.push(`${request.method} ${request.url}`);
        return send(404, { code: 20404, message: 'The requested resource was not found', status: 404 });
      }
      if (request.headers.authorization !== expectedAuth) {
        problems.push('authorization');
        return send(401, { code: 20003, message: 'Authenticate', status: 401 });
      }
      if (!request.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) {
        problems.push(`content-type ${request.headers['content-type']}`);
        return send(400, { code: 21601, message: 'Not form-encoded', status: 400 });
      }
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const sms = { to: form.get('To') ?? '', from: form.get('From') ?? '', body: form.get('Body') ?? '' };
      const fields = [...form.keys()].sort().join(',');
      if (fields !== 'Body,From,To') problems.push(`fields ${fields}`);
      if (sms.from !== from) problems.push(`From ${sms.from}`);
      if (!/^\+[1-9]\d{1,14}$/.test(sms.to) || !isValidPhoneNumber(sms.to)) {
        return send(400, {
          code: 21211,
          message: `The 'To' number ${sms.to} is not a valid phone number.`,
          more_info: 'https://www.twilio.com/docs/errors/21211',
          status: 400,
        });
      }
      if (sms.body === '' || sms.body.length > 1600) problems.push(`Body of ${sms.body.length} characters`);
      messages.push(sms);
      const index = waiting.findIndex((w) => w.to === sms.to);
      if (index >= 0) {
        seen.add(sms);
        waiting.splice(index, 1)[0]?.resolve(sms);
      }
      send(201, {
        account_sid: accountSid,
        api_version: '2010-04-01',
        body: sms.body,
        date_created: new Date().toUTCString(),
        direction: 'outbound-api',
        from: sms.from,
        num_segments: '1',
        sid: `SM${randomBytes(16).toString('hex')}`,
        status: 'queued',
        to: sms.to,
        uri: `${path.replace('.json', '')}/SM….json`,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    config: { accountSid, authToken: TEST_AUTH_TOKEN, from, apiUrl: `http://127.0.0.1:${port}` },
    messages,
    problems,
    answerNext: (...answers) => queued.push(...answers),
    nextMessageTo: (to) => {
      const arrived = messages.find((sms) => sms.to === to && !seen.has(sms));
      if (arrived) {
        seen.add(arrived);
        return Promise.resolve(arrived);
      }
      return new Promise((resolve) => waiting.push({ to, resolve }));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The 6-digit code in a confirmation SMS. */
export function codeIn(sms: Sms): string {
  const code = /\b(\d{6})\b/.exec(sms.body)?.[1];
  if (!code) throw new Error(`no code in ${JSON.stringify(sms.body)}`);
  return code;
}
