import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { type Notification, notificationId } from '../src/notification.ts';
import { setPreferences } from '../src/preferences.ts';
import { smsChannel } from '../src/sms/deliver.ts';
import { confirmPhone, phoneOf, sendConfirmationCode } from '../src/sms/phones.ts';
import { SmsUnavailableError, twilioSender } from '../src/sms/twilio.ts';
import { codeIn, type FakeTwilio, fakeTwilio, TEST_AUTH_TOKEN } from './sms-support.ts';

let database: TestDatabase;
let twilio: FakeTwilio;
beforeAll(async () => {
  [database, twilio] = await Promise.all([createTestDatabase(), fakeTwilio()]);
});
afterAll(async () => {
  await Promise.all([database?.close(), twilio?.close()]);
});

let people = 0;
async function person(): Promise<string> {
  const id = randomUUID();
  await database.db
    .insertInto('users')
    .values({ id, email: `sms-${++people}-${id}@example.test`, password_hash: 'x', display_name: 'Ana' })
    .execute();
  return id;
}

const reminder = (recipientId: string, title = 'Paint the fence is due tomorrow'): Notification => ({
  id: notificationId(42, recipientId, 'reminder'),
  recipientId,
  kind: 'reminder',
  title,
  body: 'Due 1 June 2031, 12:00',
  link: 'https://app.example/commitments/0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  commitmentId: '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  ledgerIndex: 42,
  createdAt: '2031-05-31T12:00:00.000Z',
});

/** A person with `phone` confirmed with the code that reached the fake Twilio. */
async function confirmed(userId: string, phone: string) {
  const sender = twilioSender(twilio.config);
  expect(await sendConfirmationCode(database.db, sender, userId, phone)).toMatchObject({ status: 'sent' });
  const code = codeIn(await twilio.nextMessageTo(phone));
  expect(await confirmPhone(database.db, userId, code)).toBe('confirmed');
}

test('a reminder goes by SMS to a confirmed number of a person who opted in; nothing else does', async () => {
  const channel = smsChannel({ db: database.db, sender: twilioSender(twilio.config) });
  const ana = await person();
  expect(await channel.deliver(reminder(ana))).toBe('not-wanted'); // SMS is off by default
  await setPreferences(database.db, ana, { sms: { reminder: true } });
  expect(await channel.deliver(reminder(ana))).toBe('no-phone');

  const sent = twilio.messages.length;
  expect(
    await sendConfirmationCode(database.db, twilioSender(twilio.config), ana, '+14155552671'),
  ).toMatchObject({ status: 'sent', phone: { phone: '+14155552671', confirmed: false } });
  expect(twilio.messages).toHaveLength(sent + 1); // the code, and only it
  expect(await channel.deliver(reminder(ana))).toBe('unconfirmed');
  expect(twilio.messages).toHaveLength(sent + 1);

  const code = codeIn(await twilio.nextMessageTo('+14155552671'));
  expect(await confirmPhone(database.db, ana, code)).toBe('confirmed');
  expect(await channel.deliver(reminder(ana))).toBe('sent');
  expect(twilio.messages.at(-1)).toEqual({
    to: '+14155552671',
    from: twilio.config.from,
    body: 'Paint the fence is due tomorrow\nhttps://app.example/commitments/0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
  });
  // Other kinds never go by SMS, whatever is stored.
  await database.db
    .insertInto('notification_preferences')
    .values({ user_id: ana, channel: 'sms', kind: 'dispute', enabled: true })
    .execute();
  expect(await channel.deliver({ ...reminder(ana), kind: 'dispute' })).toBe('not-wanted');
  // Opting out stops them.
  await setPreferences(database.db, ana, { sms: { reminder: false } });
  const before = twilio.messages.length;
  expect(await channel.deliver(reminder(ana))).toBe('not-wanted');
  expect(twilio.messages).toHaveLength(before);
  expect(twilio.problems).toEqual([]);
});

test('a long title is cut so the SMS stays within 320 characters', async () => {
  const channel = smsChannel({ db: database.db, sender: twilioSender(twilio.config) });
  const ben = await person();
  await setPreferences(database.db, ben, { sms: { reminder: true } });
  await confirmed(ben, '+447911123456');
  expect(await channel.deliver(reminder(ben, 'A very long title '.repeat(40)))).toBe('sent');
  const sms = twilio.messages.at(-1);
  expect(sms?.body.length).toBeLessThanOrEqual(320);
  expect(sms?.body).toMatch(/\.\.\.\nhttps:\/\/app\.example\/commitments\//);
});

test('Twilio failing (5xx) makes deliver throw, so the job is retried; a refused number does not', async () => {
  const channel = smsChannel({ db: database.db, sender: twilioSender(twilio.config) });
  const cy = await person();
  await setPreferences(database.db, cy, { sms: { reminder: true } });
  await confirmed(cy, '+33612345678');
  twilio.answerNext({ status: 503, json: { code: 20503, message: 'Service Unavailable', status: 503 } });
  const error = await channel.deliver(reminder(cy)).then(
    () => undefined,
    (failure: unknown) => failure as Error,
  );
  expect(error).toBeInstanceOf(SmsUnavailableError);
  expect(error?.message).not.toContain(TEST_AUTH_TOKEN);
  twilio.answerNext({
    status: 400,
    json: { code: 21610, message: 'Attempt to send to unsubscribed recipient' },
  });
  expect(await channel.deliver(reminder(cy))).toBe('rejected');
  expect(await channel.deliver(reminder(cy))).toBe('sent');
});

test('a code works once, for ten minutes, five tries; codes are sent three times an hour at most', async () => {
  const sender = twilioSender(twilio.config);
  const dee = await person();
  const phone = '+14155550123';
  const t0 = new Date('2031-01-01T12:00:00Z');
  const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

  await sendConfirmationCode(database.db, sender, dee, phone, { now: t0 });
  const first = codeIn(await twilio.nextMessageTo(phone));
  const stored = await database.db
    .selectFrom('phone_numbers')
    .selectAll()
    .where('user_id', '=', dee)
    .executeTakeFirst();
  expect(Buffer.from(stored?.code_hash ?? []).toString('hex')).not.toContain(first); // a hash, not the code
  expect(await confirmPhone(database.db, dee, first, at(11))).toBe('expired');

  await sendConfirmationCode(database.db, sender, dee, phone, { now: at(12) });
  const second = codeIn(await twilio.nextMessageTo(phone));
  const wrong = second === '000000' ? '000001' : '000000';
  for (let i = 0; i < 5; i++) expect(await confirmPhone(database.db, dee, wrong, at(13))).toBe('wrong-code');
  expect(await confirmPhone(database.db, dee, second, at(13))).toBe('too-many-attempts');
  expect((await phoneOf(database.db, dee))?.confirmed).toBe(false);

  expect(await sendConfirmationCode(database.db, sender, dee, phone, { now: at(14) })).toMatchObject({
    status: 'sent',
  });
  const sent = twilio.messages.length;
  expect(await sendConfirmationCode(database.db, sender, dee, phone, { now: at(15) })).toEqual({
    status: 'rate-limited',
    retryAfterSeconds: 45 * 60,
  });
  expect(twilio.messages).toHaveLength(sent);
  const third = codeIn(await twilio.nextMessageTo(phone));
  expect(await confirmPhone(database.db, dee, third, at(16))).toBe('confirmed');
  expect(await confirmPhone(database.db, dee, third, at(16))).toBe('already-confirmed');
  // The same number again: confirmed already, no SMS, even over the limit.
  expect(await sendConfirmationCode(database.db, sender, dee, phone, { now: at(17) })).toMatchObject({
    status: 'already-confirmed',
  });
  // An hour after the first code, one more may go.
  expect(await sendConfirmationCode(database.db, sender, dee, '+14155552671', { now: at(61) })).toMatchObject(
    {
      status: 'sent',
    },
  );
});
