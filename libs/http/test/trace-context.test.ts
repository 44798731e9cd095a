import { describe, expect, test } from 'vitest';
import { urlForLog } from '../src/server.ts';
import { outgoingTraceparent, parseTraceparent, requestIdOf, traceContextOf } from '../src/trace-context.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('traceparent', () => {
  test('a valid header is read; the spec’s invalid forms are ignored', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`)).toEqual({
      traceId: TRACE,
      parentSpanId: SPAN,
      flags: '01',
    });
    // A later version may append fields.
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-00-more`)).toMatchObject({ traceId: TRACE });
    for (const bad of [
      undefined,
      '',
      `00-${TRACE}-${SPAN}-01-extra`,
      `ff-${TRACE}-${SPAN}-01`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${TRACE.slice(1)}-${SPAN}-01`,
      `00_${TRACE}_${SPAN}_01`,
    ]) {
      expect(parseTraceparent(bad), String(bad)).toBeUndefined();
    }
  });

  test('a request continues the caller’s trace with a span of its own, or starts one', () => {
    const continued = traceContextOf(`00-${TRACE}-${SPAN}-01`);
    expect(continued).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, flags: '01' });
    expect(continued.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(continued.spanId).not.toBe(SPAN);
    const fresh = traceContextOf('garbage');
    expect(fresh.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(fresh.parentSpanId).toBeUndefined();
  });

  test('an outgoing call continues a correlation id that is a trace id (or a UUID), with a new span', () => {
    expect(outgoingTraceparent(TRACE)).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    expect(outgoingTraceparent('0AF76519-16CD-43DD-8448-EB211C80319C')).toMatch(
      /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/,
    );
    expect(outgoingTraceparent('deadline-sweep-2026-01-01T00:00:00.000Z')).toBeUndefined();
    expect(outgoingTraceparent(null)).toBeUndefined();
  });
});

test('X-Request-Id is honoured when well-formed, else replaced', () => {
  expect(requestIdOf('abc-123_x.y:z')).toBe('abc-123_x.y:z');
  for (const bad of ['', 'a b', 'x'.repeat(129), 'new\nline', ['a', 'b'], undefined]) {
    expect(requestIdOf(bad)).toMatch(/^[0-9a-f-]{36}$/);
  }
});

test('logged URLs keep no secret', () => {
  expect(urlForLog('/v1/calendar/c2VjcmV0LXRva2Vu.ics')).toBe('/v1/calendar/[redacted].ics');
  expect(urlForLog('/v1/unsubscribe?token=abc&channel=email')).toBe(
    '/v1/unsubscribe?token=[redacted]&channel=email',
  );
  expect(urlForLog('/v1/auth/oidc/google/callback?code=xyz&state=s')).toBe(
    '/v1/auth/oidc/google/callback?code=[redacted]&state=[redacted]',
  );
  expect(urlForLog('/v1/commitments?status=active&first=10')).toBe('/v1/commitments?status=active&first=10');
});
