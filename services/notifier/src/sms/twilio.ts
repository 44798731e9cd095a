// Sending one SMS through Twilio's Messages API (POST /2010-04-01/Accounts/{sid}/Messages.json,
// HTTP Basic auth, form-encoded To, From, Body). No SDK: one request, one answer.
//
// A 4xx other than 429 is Twilio refusing this message (21211: not a valid number, 21610: the
// person texted STOP…): sending it again cannot help, so it is an answer, not an error. A 429, a
// 5xx, a timeout or a network failure may pass: those throw SmsUnavailableError, and the job is
// retried. The auth token goes only into the Authorization header: no message, error or log line
// built here holds it.
import type { TwilioConfig } from '@connect/db';

export type SmsSendResult =
  | { sent: true; sid: string }
  | {
      sent: false;
      /** Twilio's HTTP status (4xx). */
      status: number;
      /** Twilio's error code, e.g. 21211 (invalid To number), when it gave one. */
      code: number | undefined;
      message: string;
    };

export interface SmsSender {
  /** Sends `body` to `to` (E.164); throws SmsUnavailableError when Twilio may take it later. */
  send(to: string, body: string): Promise<SmsSendResult>;
}

/** Twilio could not take the message now (429, 5xx, timeout, network): try again later. */
export class SmsUnavailableError extends Error {
  override name = 'SmsUnavailableError';
}

/** Twilio error codes meaning the To number cannot get SMS (not the request being wrong). */
export const UNREACHABLE_NUMBER_CODES: ReadonlySet<number> = new Set([
  21211, 21214, 21408, 21610, 21612, 21614,
]);

export interface TwilioSenderOptions {
  /** How long one request may take; default 10 s. */
  timeoutMs?: number;
}

export function twilioSender(config: TwilioConfig, options: TwilioSenderOptions = {}): SmsSender {
  const url = `${config.apiUrl}/2010-04-01/Accounts/${encodeURIComponent(config.accountSid)}/Messages.json`;
  const authorization = `Basic ${Buffer.from(`${config.accountSid}:${config.authToken}`).toString('base64')}`;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const { from } = config;

  return {
    async send(to, body) {
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers: {
            authorization,
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
          },
          body: new URLSearchParams({ To: to, From: from, Body: body }),
          signal: AbortSignal.timeout(timeoutMs),
          redirect: 'error',
        });
      } catch (error) {
        const reason =
          error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
            ? `no answer within ${timeoutMs} ms`
            : 'the request failed (network)';
        throw new SmsUnavailableError(`Twilio: ${reason}`);
      }
      const answer = await readJson(response);
      if (response.status === 201 || response.status === 200) {
        const sid = typeof answer?.sid === 'string' ? answer.sid : undefined;
        if (!sid) throw new SmsUnavailableError(`Twilio: HTTP ${response.status} without a message sid`);
        return { sent: true, sid };
      }
      const code = typeof answer?.code === 'number' ? answer.code : undefined;
      const message = typeof answer?.message === 'string' ? answer.message.slice(0, 300) : '';
      const what = `Twilio: HTTP ${response.status}${code ? ` (error ${code})` : ''}${message ? `: ${message}` : ''}`;
      if (response.status === 429 || response.status >= 500 || response.status < 400) {
        throw new SmsUnavailableError(what);
      }
      return { sent: false, status: response.status, code, message: what };
    },
  };
}

async function readJson(response: Response): Promise<Record<string, unknown> | undefined> {
  try {
    const value: unknown = JSON.parse(await response.text());
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
