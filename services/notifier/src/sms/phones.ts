// A person's phone number for SMS: normalised to E.164, and confirmed with a 6-digit code sent to
// it before any other SMS goes there. Only a hash of the code is stored; it expires after ten
// minutes and takes five tries at most. Sending codes is limited per person (they cost money and
// could be aimed at someone else's phone). The number is stored sealed under the person's key
// (sealPhone): it is compared only once opened.
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { type Database, type FieldCipher, openPhones, sealPhone } from '@connect/db';
import type { Kysely } from 'kysely';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import type { SmsSender } from './twilio.ts';

export const CODE_LIFETIME_MS = 10 * 60 * 1000;
export const CODE_ATTEMPTS = 5;
export const CODE_SENDS_PER_HOUR = 3;

/** Number types that cannot get SMS. */
const NOT_FOR_SMS = new Set(['FIXED_LINE', 'PREMIUM_RATE', 'VOICEMAIL', 'SHARED_COST']);

/** The number in E.164 (`+14155552671`), or why it is not one SMS can go to. */
export function normalisePhone(text: string): { phone: string } | { problem: string } {
  const trimmed = text.trim();
  if (!trimmed.startsWith('+')) {
    return { problem: 'must be an international number: + and the country code, e.g. +14155552671' };
  }
  if (!/^\+[\d\s().-]+$/.test(trimmed)) return { problem: 'may hold only digits, spaces, ( ) . and -' };
  const parsed = parsePhoneNumberFromString(trimmed);
  if (!parsed?.isValid()) return { problem: 'is not a valid phone number' };
  const type = parsed.getType();
  if (type && NOT_FOR_SMS.has(type)) return { problem: 'cannot receive SMS (not a mobile number)' };
  return { phone: parsed.number };
}

/** Where phone numbers are kept, and the cipher that seals and opens them. */
export interface PhoneStore {
  db: Kysely<Database>;
  cipher: FieldCipher;
}

/** A phone store that also sends and checks confirmation codes, kept as HMACs under `codeKey`. */
export interface PhoneCodeStore extends PhoneStore {
  /** A derived key (PHONE_CODE_KEY): a code's hash alone must not give the sealed number away. */
  codeKey: Uint8Array;
}

/** The purpose of the derived key confirmation codes are hashed with. */
export const PHONE_CODE_KEY = 'phone confirmation codes';

export interface Phone {
  phone: string;
  confirmed: boolean;
  /** When the pending code stops working; null when confirmed. */
  codeExpiresAt: Date | null;
}

/** The person's number; undefined when none is set (or their key is erased, which leaves none). */
export async function phoneOf({ db, cipher }: PhoneStore, userId: string): Promise<Phone | undefined> {
  const row = await db
    .selectFrom('phone_numbers')
    .select(['user_id', 'phone', 'confirmed_at', 'code_expires_at'])
    .where('user_id', '=', userId)
    .executeTakeFirst();
  if (!row) return undefined;
  const [phone] = await openPhones(cipher, [row]);
  if (phone === undefined) return undefined;
  return { phone, confirmed: row.confirmed_at !== null, codeExpiresAt: row.code_expires_at };
}

export async function removePhone(db: Kysely<Database>, userId: string): Promise<void> {
  await db.deleteFrom('phone_numbers').where('user_id', '=', userId).execute();
}

const codeHash = (key: Uint8Array, userId: string, phone: string, code: string) =>
  createHmac('sha256', key).update(`connect phone code\n${userId}\n${phone}\n${code}`).digest();

export const confirmationText = (code: string) =>
  `${code} is your Connect code to confirm this phone number. It expires in 10 minutes.`;

export type CodeSending =
  | { status: 'sent'; phone: Phone }
  | { status: 'already-confirmed'; phone: Phone }
  /** Too many codes sent lately; the next one may go after `retryAfterSeconds`. */
  | { status: 'rate-limited'; retryAfterSeconds: number }
  /** Twilio refused the number (invalid, unreachable, opted out). */
  | { status: 'rejected'; message: string };

export interface CodeSendingOptions {
  now?: Date;
  sendsPerHour?: number;
}

/**
 * Sends a new confirmation code to `phone` (E.164) and records it, unconfirmed, as the person's
 * number; the number they had goes. A number they confirmed already is kept as it is, with no SMS.
 * Throws SmsUnavailableError when Twilio cannot take the message now.
 */
export async function sendConfirmationCode(
  store: PhoneCodeStore,
  sender: SmsSender,
  userId: string,
  phone: string,
  options: CodeSendingOptions = {},
): Promise<CodeSending> {
  const { db } = store;
  const now = options.now ?? new Date();
  const current = await phoneOf(store, userId);
  if (current?.phone === phone && current.confirmed) return { status: 'already-confirmed', phone: current };

  const retryAfterSeconds = await countCodeSend(db, userId, now, options.sendsPerHour ?? CODE_SENDS_PER_HOUR);
  if (retryAfterSeconds !== undefined) return { status: 'rate-limited', retryAfterSeconds };

  const sealed = await sealPhone(store.cipher, userId, phone);
  if (!sealed) throw new Error(`the data key of user ${userId} is erased: no number can be kept`);
  const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
  const result = await sender.send(phone, confirmationText(code));
  if (!result.sent) return { status: 'rejected', message: result.message };

  const expiresAt = new Date(now.getTime() + CODE_LIFETIME_MS);
  const pending = {
    phone: sealed,
    confirmed_at: null,
    code_hash: codeHash(store.codeKey, userId, phone, code),
    code_expires_at: expiresAt,
  };
  await db
    .insertInto('phone_numbers')
    .values({ user_id: userId, ...pending })
    .onConflict((oc) => oc.column('user_id').doUpdateSet({ ...pending, code_attempts: 0, updated_at: now }))
    .execute();
  return { status: 'sent', phone: { phone, confirmed: false, codeExpiresAt: expiresAt } };
}

/** Counts one code sent within the hour's limit; over it, the seconds until one may go instead. */
async function countCodeSend(
  db: Kysely<Database>,
  userId: string,
  now: Date,
  perHour: number,
): Promise<number | undefined> {
  const since = new Date(now.getTime() - 3600_000);
  return db.transaction().execute(async (trx) => {
    // One person's sends are counted one at a time: two requests at once cannot both take the last.
    await trx.selectFrom('users').select('id').where('id', '=', userId).forNoKeyUpdate().execute();
    const sent = await trx
      .selectFrom('phone_code_sends')
      .select('sent_at')
      .where('user_id', '=', userId)
      .where('sent_at', '>', since)
      .orderBy('sent_at')
      .execute();
    if (sent.length >= perHour) {
      const oldest = sent[sent.length - perHour]?.sent_at ?? now;
      return Math.max(1, Math.ceil((oldest.getTime() + 3600_000 - now.getTime()) / 1000));
    }
    await trx
      .deleteFrom('phone_code_sends')
      .where('user_id', '=', userId)
      .where('sent_at', '<=', since)
      .execute();
    await trx.insertInto('phone_code_sends').values({ user_id: userId, sent_at: now }).execute();
    return undefined;
  });
}

export type Confirmation =
  | 'confirmed'
  | 'already-confirmed'
  /** No number, or no code pending for it. */
  | 'no-code'
  | 'wrong-code'
  | 'expired'
  /** Five wrong tries: this code no longer works; ask for a new one. */
  | 'too-many-attempts';

/** Checks a code the person sent back; each try counts against the code's five. */
export async function confirmPhone(
  { db, cipher, codeKey }: PhoneCodeStore,
  userId: string,
  code: string,
  now: Date = new Date(),
): Promise<Confirmation> {
  const tried = await db
    .updateTable('phone_numbers')
    .set((eb) => ({ code_attempts: eb('code_attempts', '+', 1) }))
    .where('user_id', '=', userId)
    .where('confirmed_at', 'is', null)
    .where('code_hash', 'is not', null)
    .where('code_attempts', '<', CODE_ATTEMPTS)
    .returning(['user_id', 'phone', 'code_hash', 'code_expires_at'])
    .executeTakeFirst();
  if (!tried) {
    const row = await db
      .selectFrom('phone_numbers')
      .select(['confirmed_at', 'code_hash'])
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (!row || (row.confirmed_at === null && row.code_hash === null)) return 'no-code';
    return row.confirmed_at ? 'already-confirmed' : 'too-many-attempts';
  }
  if (!tried.code_expires_at || tried.code_expires_at.getTime() <= now.getTime()) return 'expired';
  const [phone] = await openPhones(cipher, [tried]);
  if (phone === undefined) return 'no-code';
  const expected = Buffer.from(tried.code_hash as Uint8Array);
  if (!timingSafeEqual(expected, codeHash(codeKey, userId, phone, code))) return 'wrong-code';
  const confirmed = await db
    .updateTable('phone_numbers')
    .set({ confirmed_at: now, code_hash: null, code_expires_at: null, updated_at: now })
    .where('user_id', '=', userId)
    .where('phone', '=', tried.phone)
    .where('code_hash', '=', tried.code_hash)
    .where('confirmed_at', 'is', null)
    .executeTakeFirst();
  return confirmed.numUpdatedRows > 0n ? 'confirmed' : 'no-code';
}

/** The number SMS may go to: the person's, once confirmed. */
export async function confirmedPhone(store: PhoneStore, userId: string): Promise<string | undefined> {
  const phone = await phoneOf(store, userId);
  return phone?.confirmed ? phone.phone : undefined;
}
