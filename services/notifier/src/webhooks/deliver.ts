// Sends one webhook message: resolves the host, refuses addresses inside the service's network,
// connects to the very address it checked (no second lookup an attacker's DNS could answer
// differently), POSTs the signed JSON and reports what happened. It never follows redirects.
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { outgoingTraceparent } from '@connect/http';
import { refusedAddress } from './address.ts';
import { webhookHeaders } from './sign.ts';

export interface WebhookTarget {
  url: string;
  secret: string;
}

export interface WebhookMessage {
  /** The message id: the same on every attempt, so the receiver can deduplicate. */
  webhookId: string;
  eventType: string;
  payload: unknown;
  /**
   * The correlation id of what caused it (a trace id, from a request's traceparent): the message
   * goes with a traceparent continuing that trace with a new span.
   */
  correlationId?: string | null;
}

export interface DeliverOptions {
  /** Whether private, loopback and link-local addresses may be reached (CONNECT_WEBHOOKS_ALLOW_PRIVATE). */
  allowPrivate: boolean;
  timeoutMs?: number;
  /** The time the message is signed at. */
  now?: Date;
  /** Resolves a host name to its addresses (tests replace it). */
  resolve?: (hostname: string) => Promise<{ address: string; family: number }[]>;
}

export interface DeliveryOutcome {
  ok: boolean;
  /** The receiver's HTTP status; null when none came. */
  status: number | null;
  error: string | null;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

const resolveAll = (hostname: string) => dnsLookup(hostname, { all: true, verbatim: true });

export type ResolvedUrl =
  | { ok: true; url: URL; address: string; family: number }
  | { ok: false; error: string };

/** Checks a webhook URL and picks the address to connect to; an error reads after "the URL …". */
export async function resolveWebhookUrl(
  raw: string,
  options: Pick<DeliverOptions, 'allowPrivate' | 'resolve'>,
): Promise<ResolvedUrl> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, error: 'is not a URL' };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return { ok: false, error: 'must be https or http' };
  if (url.username || url.password) return { ok: false, error: 'must not carry a user name or password' };
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: { address: string; family: number }[];
  if (isIP(hostname)) addresses = [{ address: hostname, family: isIP(hostname) }];
  else {
    try {
      addresses = await (options.resolve ?? resolveAll)(hostname);
    } catch {
      return { ok: false, error: `has a host name that does not resolve (${hostname})` };
    }
  }
  const [first] = addresses;
  if (!first) return { ok: false, error: `has a host name that does not resolve (${hostname})` };
  if (!options.allowPrivate) {
    for (const { address } of addresses) {
      const reason = refusedAddress(address);
      if (reason) return { ok: false, error: `points at a ${reason} address (${address}), which is refused` };
    }
    // Events go to a public host over the internet: encrypted, as push endpoints are.
    if (url.protocol !== 'https:') return { ok: false, error: 'must be https on a public host' };
  }
  return { ok: true, url, address: first.address, family: first.family };
}

/** The body Standard Webhooks suggests: the event type, when it was sent, and the event's data. */
export const webhookBody = (message: WebhookMessage, now: Date): string =>
  JSON.stringify({ type: message.eventType, timestamp: now.toISOString(), data: message.payload });

/**
 * Kept-alive connections per checked address (and host name, which TLS verifies): a receiver
 * taking many messages gets them over a few open connections rather than one each. A connection
 * is only ever to the address that was checked; a host whose address changes gets another agent.
 */
const agents = new Map<string, http.Agent>();
const MAX_AGENTS = 256;

function agentFor(url: URL, address: string): http.Agent {
  const key = `${url.protocol}//${url.hostname}@${address}:${url.port}`;
  let agent = agents.get(key);
  if (!agent) {
    const options = { keepAlive: true, maxSockets: 16, maxFreeSockets: 4, timeout: 30_000 };
    agent = url.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
    if (agents.size >= MAX_AGENTS) {
      const [oldest, old] = agents.entries().next().value as [string, http.Agent];
      agents.delete(oldest);
      old.destroy();
    }
    agents.set(key, agent);
  }
  return agent;
}

export async function deliverWebhook(
  target: WebhookTarget,
  message: WebhookMessage,
  options: DeliverOptions,
): Promise<DeliveryOutcome> {
  const resolved = await resolveWebhookUrl(target.url, options);
  if (!resolved.ok) return { ok: false, status: null, error: `the URL ${resolved.error}` };
  const now = options.now ?? new Date();
  const body = webhookBody(message, now);
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'user-agent': 'Connect-Webhooks/1',
    ...webhookHeaders(target.secret, message.webhookId, now, body),
  };
  const traceparent = outgoingTraceparent(message.correlationId);
  if (traceparent) Object.assign(headers, { traceparent });
  const { url, address, family } = resolved;
  const pinned: LookupFunction = (_hostname, lookupOptions, callback) => {
    if (lookupOptions.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const send = url.protocol === 'https:' ? https.request : http.request;
  return new Promise<DeliveryOutcome>((resolve) => {
    let settled = false;
    const finish = (outcome: DeliveryOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const agent = agentFor(url, address);
    const request = send(url, { method: 'POST', headers, lookup: pinned, agent }, (response) => {
      const status = response.statusCode ?? 0;
      // The body is not used; read it so the exchange completes within the timeout.
      response.resume();
      response.on('error', (error) => finish({ ok: false, status, error: error.message }));
      response.on('end', () => {
        if (status >= 200 && status < 300) finish({ ok: true, status, error: null });
        else if (status >= 300 && status < 400)
          finish({ ok: false, status, error: `redirected (${status}); redirects are not followed` });
        else finish({ ok: false, status, error: `answered ${status}` });
      });
    });
    const timer = setTimeout(() => {
      finish({ ok: false, status: null, error: `no answer within ${timeoutMs} ms` });
      request.destroy();
    }, timeoutMs);
    request.on('error', (error) => finish({ ok: false, status: null, error: error.message }));
    request.end(body);
  });
}
