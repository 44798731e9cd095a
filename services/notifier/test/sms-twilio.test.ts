import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { ConfigError, loadConfig } from '@connect/db';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SMS_MAX_LENGTH, smsText } from '../src/sms/deliver.ts';
import { normalisePhone } from '../src/sms/phones.ts';
import { SmsUnavailableError, twilioSender } from '../src/sms/twilio.ts';
import { type FakeTwilio, fakeTwilio, TEST_AUTH_TOKEN } from './sms-support.ts';

let twilio: FakeTwilio;
beforeAll(async () => {
  twilio = await fakeTwilio();
});
afterAll(() => twilio.close());

/** What `promise` rejects with; fails the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

const secretFree = (value: unknown) =>
  expect(inspect(value, { depth: 10, showHidden: true })).not.toContain(TEST_AUTH_TOKEN);

test('a message goes to Twilio as its API documents, and Twilio’s sid comes back', async () => {
  const sender = twilioSender(twilio.config);
  const result = await sender.send('+14155552671', 'Reminder: paint the fence\nhttps://app.example/c/1');
  expect(result).toEqual({ sent: true, sid: expect.stringMatching(/^SM[0-9a-f]{32}$/) });
  expect(twilio.problems).toEqual([]);
  expect(twilio.messages.at(-1)).toEqual({
    to: '+14155552671',
    from: '+15005550006',
    body: 'Reminder: paint the fence\nhttps://app.example/c/1',
  });
  secretFree(sender);
});

test('a number Twilio refuses is an answer, not an error: sending again cannot help', async () => {
  const sender = twilioSender(twilio.config);
  const result = await sender.send('+1415', 'hello');
  expect(result).toMatchObject({ sent: false, status: 400, code: 21211 });
  expect(result.sent === false && result.message).toMatch(/21211.*not a valid phone number/);
  twilio.answerNext({
    status: 400,
    json: { code: 21610, message: 'Attempt to send to unsubscribed recipient' },
  });
  expect(await sender.send('+14155552671', 'hello')).toMatchObject({ sent: false, code: 21610 });
});

test('a 5xx, a 429, a timeout or an unreachable Twilio throws, so the job is retried', async () => {
  const sender = twilioSender(twilio.config, { timeoutMs: 300 });
  twilio.answerNext(
    { status: 500, json: { code: 20500, message: 'Internal Server Error', status: 500 } },
    { status: 503 },
    { status: 429, json: { code: 20429, message: 'Too Many Requests', status: 429 } },
    'hang',
  );
  for (const expected of [/HTTP 500 \(error 20500\)/, /HTTP 503/, /HTTP 429/, /no answer within 300 ms/]) {
    const error = await rejection(sender.send('+14155552671', 'hello'));
    expect(error).toBeInstanceOf(SmsUnavailableError);
    expect(error.message).toMatch(expected);
    secretFree(error);
  }
  // Nothing listens here.
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise((resolve) => closed.close(resolve));
  const away = twilioSender({ ...twilio.config, apiUrl: `http://127.0.0.1:${port}` });
  const error = await rejection(away.send('+14155552671', 'hello'));
  expect(error).toBeInstanceOf(SmsUnavailableError);
  secretFree(error);
});

test('a wrong auth token is refused by Twilio, and neither token shows in what comes back', async () => {
  const wrong = twilioSender({ ...twilio.config, authToken: `${TEST_AUTH_TOKEN}x` });
  const result = await wrong.send('+14155552671', 'hello');
  expect(result).toMatchObject({ sent: false, status: 401, code: 20003 });
  expect(twilio.problems).toEqual(['authorization']);
  twilio.problems.length = 0;
  secretFree(result);
  secretFree(wrong);
});

test('the configuration: all three Twilio variables or none; the token is never echoed', () => {
  const base = { DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/postgres' };
  expect(loadConfig(base).twilio).toBeUndefined();
  const sid = `AC${'a1'.repeat(16)}`;
  const config = loadConfig({
    ...base,
    CONNECT_TWILIO_ACCOUNT_SID: sid,
    CONNECT_TWILIO_AUTH_TOKEN: TEST_AUTH_TOKEN,
    CONNECT_TWILIO_FROM: '+15005550006',
  });
  expect(config.twilio).toEqual({
    accountSid: sid,
    authToken: TEST_AUTH_TOKEN,
    from: '+15005550006',
    apiUrl: 'https://api.twilio.com',
  });
  const partial = (() => {
    try {
      loadConfig({ ...base, CONNECT_TWILIO_AUTH_TOKEN: TEST_AUTH_TOKEN, CONNECT_TWILIO_API_URL: 'ftp://x' });
    } catch (error) {
      return error as ConfigError;
    }
  })();
  expect(partial).toBeInstanceOf(ConfigError);
  expect(partial?.message).toContain('CONNECT_TWILIO_API_URL');
  const missing = (() => {
    try {
      loadConfig({ ...base, CONNECT_TWILIO_AUTH_TOKEN: TEST_AUTH_TOKEN, CONNECT_TWILIO_ACCOUNT_SID: sid });
    } catch (error) {
      return error as ConfigError;
    }
  })();
  expect(missing?.issues.map((issue) => issue.variable)).toEqual(['CONNECT_TWILIO_FROM']);
  for (const error of [partial, missing]) secretFree(error);
  expect(() => loadConfig({ ...base, CONNECT_TWILIO_ACCOUNT_SID: 'AC123' })).toThrow(
    /CONNECT_TWILIO_ACCOUNT_SID/,
  );
  expect(
    loadConfig({
      ...base,
      CONNECT_TWILIO_ACCOUNT_SID: sid,
      CONNECT_TWILIO_AUTH_TOKEN: TEST_AUTH_TOKEN,
      CONNECT_TWILIO_FROM: 'Connect',
      CONNECT_TWILIO_API_URL: 'http://127.0.0.1:4010/',
    }).twilio?.apiUrl,
  ).toBe('http://127.0.0.1:4010');
});

test('phone numbers are normalised to E.164; what SMS cannot reach is refused with a reason', () => {
  expect(normalisePhone('+1 (415) 555-2671')).toEqual({ phone: '+14155552671' });
  expect(normalisePhone(' +33 6 12 34 56 78 ')).toEqual({ phone: '+33612345678' });
  expect(normalisePhone('415 555 2671')).toEqual({ problem: expect.stringMatching(/international/) });
  expect(normalisePhone('+1415555267')).toEqual({ problem: 'is not a valid phone number' });
  expect(normalisePhone('+999123456789')).toEqual({ problem: 'is not a valid phone number' });
  expect(normalisePhone('+44 20 7183 8750')).toEqual({
    problem: expect.stringMatching(/cannot receive SMS/),
  });
  expect(normalisePhone('+1 415 555 2671 call me')).toMatchObject({ problem: expect.any(String) });
});

test('an SMS is the title and the link, within 320 characters', () => {
  const link = 'https://app.example/commitments/0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10';
  expect(smsText({ title: 'Paint the fence is due tomorrow', link })).toBe(
    `Paint the fence is due tomorrow\n${link}`,
  );
  const long = smsText({ title: 'x '.repeat(400), link });
  expect(long.length).toBeLessThanOrEqual(SMS_MAX_LENGTH);
  expect(long.endsWith(`...\n${link}`)).toBe(true);
  expect(smsText({ title: 'a', link: `https://x/${'y'.repeat(400)}` }).length).toBe(SMS_MAX_LENGTH);
});
