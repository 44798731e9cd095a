import { randomUUID } from 'node:crypto';
import { SealBroken } from '@connect/crypto/envelope';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { type Notification, notificationId } from '../src/notification.ts';
import { setPreferences } from '../src/preferences.ts';
import { smsChannel } from '../src/sms/deliver.ts';
import {
  confirmPhone,
  PHONE_CODE_KEY,
  type PhoneCodeStore,
  phoneOf,
  sendConfirmationCode,
} from '../src/sms/phones.ts';
import { SmsUnavailableError, twilioSender } from '../src/sms/twilio.ts';
import { rowsHold, type SealedFields, sealedFields } from './sealed-support.ts';
import { codeIn, type FakeTwilio, fakeTwilio, TEST_AUTH_TOKEN } from './sms-support.ts';

let database: TestDatabase;
let twilio: FakeTwilio;
let sealed: SealedFields;
/** The phone numbers, sealed under each person's key. */
let phones: PhoneCodeStore;
beforeAll(async () => {
  [database, twilio] = await Promise.all([createTestDatabase(), fakeTwilio()]);
  sealed = await sealedFields(database.pool);
  phones = { db: database.db, cipher: sealed.cipher, codeKey: await sealed.keys.derivedKey(PHONE_CODE_KEY) };
});
afterAll(async () => {
  await sealed?.close();
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
  expect(await sendConfirmationCode(phones, sender, userId, phone)).toMatchObject({ status: 'sent' });
  const code = codeIn(await twilio.nextMessageTo(phone));
  expect(await confirmPhone(phones, userId, code)).toBe('confirmed');
}

test('a reminder goes by SMS to a confirmed number of a person who opted in; nothing else does', async () => {
  const channel = smsChannel({ db: database.db, cipher: sealed.cipher, sender: twilioSender(twilio.config) });
  const ana = await person();
  expect(await channel.deliver(reminder(ana))).toBe('not-wanted'); // SMS is off by default
  await setPreferences(database.db, ana, { sms: { reminder: true } });
  expect(await channel.deliver(reminder(ana))).toBe('no-phone');

  const sent = twilio.messages.length;
  expect(await sendConfirmationCode(phones, twilioSender(twilio.config), ana, '+14155552671')).toMatchObject({
    status: 'sent',
    phone: { phone: '+14155552671', confirmed: false },
  });
  expect(twilio.messages).toHaveLength(sent + 1); // the code, and only it
  expect(await channel.deliver(reminder(ana))).toBe('unconfirmed');
  expect(twilio.messages).toHaveLength(sent + 1);

  const code = codeIn(await twilio.nextMessageTo('+14155552671'));
  expect(await confirmPhone(phones, ana, code)).toBe('confirmed');
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
  const channel = smsChannel({ db: database.db, cipher: sealed.cipher, sender: twilioSender(twilio.config) });
  const ben = await person();
  await setPreferences(database.db, ben, { sms: { reminder: true } });
  await confirmed(ben, '+447911123456');
  expect(await channel.deliver(reminder(ben, 'A very long title '.repeat(40)))).toBe('sent');
  const sms = twilio.messages.at(-1);
  expect(sms?.body.length).toBeLessThanOrEqual(320);
  expect(sms?.body).toMatch(/\.\.\.\nhttps:\/\/app\.example\/commitments\//);
});

test('Twilio failing (5xx) makes deliver throw, so the job is retried; a refused number does not', async () => {
  const channel = smsChannel({ db: database.db, cipher: sealed.cipher, sender: twilioSender(twilio.config) });
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

  await sendConfirmationCode(phones, sender, dee, phone, { now: t0 });
  const first = codeIn(await twilio.nextMessageTo(phone));
  const stored = await database.db
    .selectFrom('phone_numbers')
    .selectAll()
    .where('user_id', '=', dee)
    .executeTakeFirst();
  expect(Buffer.from(stored?.code_hash ?? []).toString('hex')).not.toContain(first); // a hash, not the code
  expect(await confirmPhone(phones, dee, first, at(11))).toBe('expired');

  await sendConfirmationCode(phones, sender, dee, phone, { now: at(12) });
  const second = codeIn(await twilio.nextMessageTo(phone));
  const wrong = second === '000000' ? '000001' : '000000';
  for (let i = 0; i < 5; i++) expect(await confirmPhone(phones, dee, wrong, at(13))).toBe('wrong-code');
  expect(await confirmPhone(phones, dee, second, at(13))).toBe('too-many-attempts');
  expect((await phoneOf(phones, dee))?.confirmed).toBe(false);

  expect(await sendConfirmationCode(phones, sender, dee, phone, { now: at(14) })).toMatchObject({
    status: 'sent',
  });
  const sent = twilio.messages.length;
  expect(await sendConfirmationCode(phones, sender, dee, phone, { now: at(15) })).toEqual({
    status: 'rate-limited',
    retryAfterSeconds: 45 * 60,
  });
  expect(twilio.messages).toHaveLength(sent);
  const third = codeIn(await twilio.nextMessageTo(phone));
  expect(await confirmPhone(phones, dee, third, at(16))).toBe('confirmed');
  expect(await confirmPhone(phones, dee, third, at(16))).toBe('already-confirmed');
  // The same number again: confirmed already, no SMS, even over the limit.
  expect(await sendConfirmationCode(phones, sender, dee, phone, { now: at(17) })).toMatchObject({
    status: 'already-confirmed',
  });
  // An hour after the first code, one more may go.
  expect(await sendConfirmationCode(phones, sender, dee, '+14155552671', { now: at(61) })).toMatchObject({
    status: 'sent',
  });
});

test('the number is sealed at rest, bound to its person: moved to another row it does not open', async () => {
  const sender = twilioSender(twilio.config);
  const [eve, fay] = [await person(), await person()];
  const phone = '+14155550177';
  await setPreferences(database.db, eve, { sms: { reminder: true } });
  await confirmed(eve, phone);
  const row = 'select * from phone_numbers where user_id = $1';
  expect(await rowsHold(database.pool, row, [eve], phone)).toBe(false);
  expect(await rowsHold(database.pool, row, [eve], phone.slice(1))).toBe(false);
  // Read back and delivered as before.
  expect(await phoneOf(phones, eve)).toMatchObject({ phone, confirmed: true });
  const channel = smsChannel({ db: database.db, cipher: sealed.cipher, sender });
  expect(await channel.deliver(reminder(eve))).toBe('sent');
  expect(twilio.messages.at(-1)?.to).toBe(phone);

  await database.pool.query(
    `insert into phone_numbers (user_id, phone, confirmed_at)
     select $2, phone, confirmed_at from phone_numbers where user_id = $1`,
    [eve, fay],
  );
  await expect(phoneOf(phones, fay)).rejects.toThrow(SealBroken);
});

test('a number stored before sealing (clear JSON, as migrated) still reads, and a new one is sealed', async () => {
  const gus = await person();
  await database.pool.query(
    `insert into phone_numbers (user_id, phone, confirmed_at)
     values ($1, convert_to(to_json($2::text)::text, 'UTF8'), now())`,
    [gus, '+14155550188'],
  );
  expect(await phoneOf(phones, gus)).toMatchObject({ phone: '+14155550188', confirmed: true });
  // The same number again: confirmed already, compared once opened.
  expect(await sendConfirmationCode(phones, twilioSender(twilio.config), gus, '+14155550188')).toMatchObject({
    status: 'already-confirmed',
  });
  await sendConfirmationCode(phones, twilioSender(twilio.config), gus, '+14155550199');
  const code = codeIn(await twilio.nextMessageTo('+14155550199'));
  expect(await confirmPhone(phones, gus, code)).toBe('confirmed');
  expect(
    await rowsHold(database.pool, 'select * from phone_numbers where user_id = $1', [gus], '4155550199'),
  ).toBe(false);
});

test('once the person’s key is erased their number is gone: no SMS goes', async () => {
  const hal = await person();
  await setPreferences(database.db, hal, { sms: { reminder: true } });
  await confirmed(hal, '+14155550166');
  await database.pool.query(
    `update data_keys set wrapped_key = null, master_key_id = null, erased_at = now() where subject = $1`,
    [`user:${hal}`],
  );
  sealed.keys.forget(`user:${hal}`);
  expect(await phoneOf(phones, hal)).toBeUndefined();
  const channel = smsChannel({ db: database.db, cipher: sealed.cipher, sender: twilioSender(twilio.config) });
  expect(await channel.deliver(reminder(hal))).toBe('no-phone');
});
