// The caller's phone number for SMS: set it (a confirmation code goes to it by SMS), confirm it
// with that code, read it, remove it. No other SMS goes to a number before it is confirmed.
import type { Authenticate } from '@connect/auth';
import type { Database, KeyRing } from '@connect/db';
import { badRequest, HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import {
  CODE_SENDS_PER_HOUR,
  confirmPhone,
  normalisePhone,
  PHONE_CODE_KEY,
  type Phone,
  phoneOf,
  removePhone,
  type SmsSender,
  SmsUnavailableError,
  sendConfirmationCode,
} from '@connect/notifier';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';

export interface PhoneRouteDeps {
  db: Kysely<Database>;
  /** Its cipher seals and opens the numbers (cipher.fields). */
  ledger: Pick<Ledger, 'cipher'>;
  /** Derives the key confirmation codes are hashed with. */
  keys: Pick<KeyRing, 'derivedKey'>;
  authenticate: Authenticate;
  /** Twilio (CONNECT_TWILIO_*); unset → SMS is off and no number can be added. */
  sms?: SmsSender;
  /** Confirmation codes sent per person and hour (default 3). */
  phoneCodesPerHour?: number;
  now?: () => Date;
}

export const phoneBody = z.object({
  phone: z
    .string()
    .min(1)
    .max(40)
    .meta({ description: 'E.164 or any international form, e.g. +1 415 555 2671' }),
});
export const phoneConfirmBody = z.object({
  code: z
    .string()
    .regex(/^\d{6}$/, 'must be the 6 digits sent by SMS')
    .meta({ description: 'The code sent by SMS' }),
});
export const phoneResponse = z.object({
  phone: z.string().meta({ description: 'E.164' }),
  confirmed: z.boolean(),
  codeExpiresAt: z.iso.datetime().nullable().meta({ description: 'When the pending code stops working' }),
});

const phoneJson = (phone: Phone) => ({
  phone: phone.phone,
  confirmed: phone.confirmed,
  codeExpiresAt: phone.codeExpiresAt?.toISOString() ?? null,
});

export async function phoneRoutes(app: FastifyInstance, deps: PhoneRouteDeps): Promise<void> {
  const { db, authenticate } = deps;
  const phones = {
    db,
    cipher: deps.ledger.cipher.fields,
    codeKey: await deps.keys.derivedKey(PHONE_CODE_KEY),
  };
  const now = deps.now ?? (() => new Date());

  app.get('/v1/me/phone', async (request) => {
    const caller = await authenticate(request);
    const phone = await phoneOf(phones, caller.userId);
    if (!phone) throw new HttpProblem(problem(404, 'No phone number is set; PUT /v1/me/phone adds one.'));
    return phoneJson(phone);
  });

  app.put('/v1/me/phone', async (request, reply) => {
    const caller = await authenticate(request);
    const body = parseWith(phoneBody, request.body);
    const normalised = normalisePhone(body.phone);
    if ('problem' in normalised) throw badRequest([{ path: 'body.phone', message: normalised.problem }]);
    if (!deps.sms) {
      throw new HttpProblem(problem(409, 'SMS is off on this service, so no phone number can be added.'));
    }
    let sending: Awaited<ReturnType<typeof sendConfirmationCode>>;
    try {
      sending = await sendConfirmationCode(phones, deps.sms, caller.userId, normalised.phone, {
        now: now(),
        sendsPerHour: deps.phoneCodesPerHour ?? CODE_SENDS_PER_HOUR,
      });
    } catch (error) {
      if (!(error instanceof SmsUnavailableError)) throw error;
      request.log.warn({ err: error.message }, 'could not send a phone confirmation code');
      reply.header('retry-after', '60');
      throw new HttpProblem(problem(503, 'The confirmation code could not be sent just now; try again.'));
    }
    switch (sending.status) {
      case 'sent':
      case 'already-confirmed':
        return phoneJson(sending.phone);
      case 'rate-limited':
        reply.header('retry-after', String(sending.retryAfterSeconds));
        throw new HttpProblem(
          problem(
            429,
            `Too many confirmation codes sent; try again in ${Math.ceil(sending.retryAfterSeconds / 60)} minutes.`,
          ),
        );
      case 'rejected':
        request.log.info({ err: sending.message }, 'Twilio refused a phone number');
        throw badRequest([{ path: 'body.phone', message: 'cannot receive SMS from us' }]);
    }
  });

  app.post('/v1/me/phone/confirm', async (request, reply) => {
    const caller = await authenticate(request);
    const { code } = parseWith(phoneConfirmBody, request.body);
    const outcome = await confirmPhone(phones, caller.userId, code, now());
    switch (outcome) {
      case 'confirmed':
      case 'already-confirmed':
        return reply.code(204).send();
      case 'no-code':
        throw new HttpProblem(problem(409, 'No confirmation code is pending; PUT /v1/me/phone sends one.'));
      case 'wrong-code':
        throw badRequest([{ path: 'body.code', message: 'is not the code we sent' }], 'The code is wrong.');
      case 'expired':
        throw badRequest(
          [{ path: 'body.code', message: 'has expired; PUT /v1/me/phone sends a new one' }],
          'The code has expired.',
        );
      case 'too-many-attempts':
        throw new HttpProblem(
          problem(429, 'Too many wrong codes: this one no longer works; PUT /v1/me/phone sends a new one.'),
        );
    }
  });

  app.delete('/v1/me/phone', async (request, reply) => {
    const caller = await authenticate(request);
    await removePhone(db, caller.userId);
    return reply.code(204).send();
  });
}
