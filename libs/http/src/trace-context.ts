// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header a request
// comes with, the span a service opens for it, and the header it sends on to what it calls.
import { randomBytes, randomUUID } from 'node:crypto';

export interface TraceContext {
  /** 32 lower-case hex digits, not all zero. */
  traceId: string;
  /** This service's span: 16 lower-case hex digits, not all zero. */
  spanId: string;
  /** The caller's span, when a traceparent came with the request. */
  parentSpanId?: string;
  /** trace-flags, 2 hex digits (01: sampled). */
  flags: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZEROS = /^0+$/;

/** A traceparent header's parts; undefined when it is missing or malformed (then it is ignored). */
export function parseTraceparent(
  header: string | string[] | undefined,
): { traceId: string; parentSpanId: string; flags: string } | undefined {
  if (typeof header !== 'string') return undefined;
  const match = TRACEPARENT.exec(header.trim());
  if (!match) return undefined;
  const [, version = '', traceId = '', parentSpanId = '', flags = '', rest] = match;
  // Version ff is invalid; version 00 has exactly four parts; a later version may add more.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (ZEROS.test(traceId) || ZEROS.test(parentSpanId)) return undefined;
  return { traceId, parentSpanId, flags };
}

export const isTraceId = (text: string): boolean => /^[0-9a-f]{32}$/.test(text) && !ZEROS.test(text);

/** Random bytes for ids, cut from one CSPRNG draw at a time: two draws a request were a visible cost. */
const ID_BYTES_PER_DRAW = 4096;
let idBytes = Buffer.alloc(0);
let idBytesAt = 0;
function randomHex(bytes: number): string {
  if (idBytesAt + bytes > idBytes.length) {
    idBytes = randomBytes(ID_BYTES_PER_DRAW);
    idBytesAt = 0;
  }
  idBytesAt += bytes;
  return idBytes.toString('hex', idBytesAt - bytes, idBytesAt);
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

/** The context of a request: the incoming trace continued with a new span, or a new trace. */
export function traceContextOf(traceparent: string | string[] | undefined): TraceContext {
  const parent = parseTraceparent(traceparent);
  if (!parent) return { traceId: newTraceId(), spanId: newSpanId(), flags: '01' };
  return {
    traceId: parent.traceId,
    spanId: newSpanId(),
    parentSpanId: parent.parentSpanId,
    flags: parent.flags,
  };
}

export const formatTraceparent = (context: Pick<TraceContext, 'traceId' | 'spanId' | 'flags'>): string =>
  `00-${context.traceId}-${context.spanId}-${context.flags}`;

/**
 * The traceparent for a call this service makes on behalf of `traceId` (e.g. a correlation id
 * kept in a ledger entry's meta): the same trace, a new span. Undefined when it is not a trace id.
 */
export function outgoingTraceparent(traceId: string | null | undefined): string | undefined {
  if (!traceId) return undefined;
  const id = traceId.replaceAll('-', '').toLowerCase();
  return isTraceId(id) ? formatTraceparent({ traceId: id, spanId: newSpanId(), flags: '01' }) : undefined;
}

const REQUEST_ID = /^[A-Za-z0-9._~:@+=/-]{1,128}$/;

/** The request id: the client's X-Request-Id when it is well-formed, else a new one. */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
}
