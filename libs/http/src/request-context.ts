// What identifies a request in the logs and beyond: its request id (X-Request-Id, honoured when
// well-formed, echoed back), its trace (W3C traceparent, continued with a span of ours, or a new
// trace) and its correlation id, the trace id, which a command writes into its ledger entries'
// meta. Every log line of the request carries all of them; with OpenTelemetry on, the span is
// exported too (telemetry.ts).
import type { IncomingMessage } from 'node:http';
import { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import { formatTraceparent, requestIdOf, type TraceContext, traceContextOf } from './trace-context.ts';

/** A span of the request's trace, opened when it arrives and ended with its response. */
export interface RequestSpan {
  context: TraceContext;
  end(outcome: { statusCode: number; route: string | undefined; method: string }): void;
}

/** Opens the span of a request (telemetry.ts replaces it while OpenTelemetry exports). */
export type SpanStarter = (
  traceparent: string | string[] | undefined,
  request: IncomingMessage,
) => RequestSpan;

const untracked: SpanStarter = (traceparent) => ({ context: traceContextOf(traceparent), end() {} });
let startSpan: SpanStarter = untracked;

/** Sets how request spans are opened; undefined puts back the default (ids only, nothing exported). */
export function useSpanStarter(starter: SpanStarter | undefined): void {
  startSpan = starter ?? untracked;
}

const spans = new WeakMap<object, RequestSpan>();

function spanOf(raw: object): RequestSpan {
  let span = spans.get(raw);
  if (!span) {
    span = untracked(undefined, raw as IncomingMessage);
    spans.set(raw, span);
  }
  return span;
}

/** The server options that give each request its ids and put them into every log line of it. */
export function requestIdentityOptions(): Pick<
  FastifyServerOptions,
  'genReqId' | 'logController' | 'childLoggerFactory'
> {
  return {
    genReqId: (raw) => requestIdOf(raw.headers['x-request-id']),
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    childLoggerFactory(logger, bindings, options, raw) {
      const span = startSpan(raw.headers.traceparent, raw as IncomingMessage);
      spans.set(raw, span);
      const { traceId, spanId } = span.context;
      return logger.child(
        // The ids first: spreading into a literal and then adding keys is slow in this V8.
        { correlationId: traceId, trace_id: traceId, span_id: spanId, ...bindings },
        options,
      );
    },
  };
}

/** Echoes the ids on every response, and ends the request's span with it. */
export function registerRequestIdentity(app: FastifyInstance): void {
  app.decorateRequest('trace', {
    getter(this: { raw: object }) {
      return spanOf(this.raw).context;
    },
  });
  app.decorateRequest('correlationId', {
    getter(this: { raw: object }) {
      return spanOf(this.raw).context.traceId;
    },
  });
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    reply.header('traceresponse', formatTraceparent(request.trace));
  });
  const end = (
    request: { raw: object; method: string; routeOptions: { url?: string } },
    statusCode: number,
  ) => {
    spans.get(request.raw)?.end({ statusCode, route: request.routeOptions.url, method: request.method });
    spans.delete(request.raw);
  };
  app.addHook('onResponse', async (request, reply) => end(request, reply.statusCode));
  app.addHook('onRequestAbort', async (request) => end(request, 499));
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's trace: its trace id, this service's span, the caller's span if it sent one. */
    readonly trace: TraceContext;
    /**
     * What ties together everything the request causes (log lines, ledger entries' meta, webhook
     * calls): its trace id.
     */
    readonly correlationId: string;
  }
}
