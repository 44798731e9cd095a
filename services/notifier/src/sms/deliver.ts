// Delivering one notification by SMS: only reminders, only to a person who opted in (preferences)
// and only to their confirmed number. A job handler calls `deliver`; it rejects when Twilio may
// take the message later (429, 5xx, timeout, network), so the job is retried, and answers
// 'rejected' when Twilio refused it for good (an invalid or opted-out number), so it is not.
import type { Database, FieldCipher, TwilioConfig } from '@connect/db';
import type { Kysely } from 'kysely';
import type { Notification } from '../notification.ts';
import { refusal, wants } from '../preferences.ts';
import { phoneOf } from './phones.ts';
import { type SmsSender, twilioSender } from './twilio.ts';

export type SmsOutcome = 'sent' | 'not-wanted' | 'no-phone' | 'unconfirmed' | 'rejected';

export interface SmsChannel {
  deliver(notification: Notification): Promise<SmsOutcome>;
  close(): void;
}

export interface SmsChannelDeps {
  db: Kysely<Database>;
  /** Opens the recipient's number. */
  cipher: FieldCipher;
  sender: SmsSender;
}

/** Longest SMS sent: two segments of GSM-7 text. */
export const SMS_MAX_LENGTH = 320;

/** The message: the notification's title and its link, shortening the title to fit. */
export function smsText(notification: Pick<Notification, 'title' | 'link'>): string {
  const title = notification.title.replace(/\s+/g, ' ').trim();
  const room = SMS_MAX_LENGTH - notification.link.length - 1;
  if (room < 8) return notification.link.slice(0, SMS_MAX_LENGTH);
  const shown = title.length <= room ? title : `${title.slice(0, room - 3).trimEnd()}...`;
  return `${shown}\n${notification.link}`;
}

export function smsChannel({ db, cipher, sender }: SmsChannelDeps): SmsChannel {
  return {
    async deliver(notification) {
      if (refusal('sms', notification.kind, true)) return 'not-wanted';
      if (!(await wants(db, notification.recipientId, 'sms', notification.kind))) return 'not-wanted';
      const phone = await phoneOf({ db, cipher }, notification.recipientId);
      if (!phone) return 'no-phone';
      if (!phone.confirmed) return 'unconfirmed';
      const result = await sender.send(phone.phone, smsText(notification));
      return result.sent ? 'sent' : 'rejected';
    },
    close: () => {},
  };
}

/** Twilio from the configuration, or undefined while CONNECT_TWILIO_* is unset. */
export function smsSenderFromConfig(config: { twilio: TwilioConfig | undefined }): SmsSender | undefined {
  return config.twilio ? twilioSender(config.twilio) : undefined;
}

/** The SMS channel from the configuration, or undefined while CONNECT_TWILIO_* is unset. */
export async function smsChannelFromConfig(
  config: { twilio: TwilioConfig | undefined },
  deps: { db: Kysely<Database>; cipher: FieldCipher },
): Promise<SmsChannel | undefined> {
  const sender = smsSenderFromConfig(config);
  return sender ? smsChannel({ ...deps, sender }) : undefined;
}
