// OpenTelemetry traces, exported over OTLP/HTTP (JSON) while OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; without it nothing is loaded and nothing runs. Each
// request gets a server span, a child of the caller's traceparent when it sent one, and the ids
// in the request's log lines are that span's. The exporter reads the standard OTEL_EXPORTER_OTLP_*
// variables itself (headers, timeout); OTEL_SERVICE_NAME names the service.
import type { IncomingMessage } from 'node:http';
import { type RequestSpan, useSpanStarter } from './request-context.ts';
import { urlForLog } from './server.ts';

export interface Telemetry {
  /** Exports the spans still buffered and stops. */
  shutdown(): Promise<void>;
}

/** Where spans go: the traces endpoint as given, or /v1/traces under the OTLP endpoint (as the spec says). */
function tracesUrl(env: Record<string, string | undefined>): string {
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  return `${(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '').replace(/\/+$/, '')}/v1/traces`;
}

/** Starts exporting request spans when the environment asks for it; undefined when it does not. */
export async function startTelemetry(
  env: Record<string, string | undefined>,
  options: { serviceName?: string } = {},
): Promise<Telemetry | undefined> {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return undefined;
  const [api, { NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] =
    await Promise.all([
      import('@opentelemetry/api'),
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      'service.name': env.OTEL_SERVICE_NAME ?? options.serviceName ?? 'connect',
    }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(env) }))],
  });
  // Sets the W3C trace context propagator and the context manager, for whatever else traces.
  provider.register();
  const tracer = provider.getTracer('connect');

  useSpanStarter((traceparent, request: IncomingMessage): RequestSpan => {
    const parent = api.propagation.extract(api.ROOT_CONTEXT, { traceparent }, api.defaultTextMapGetter);
    const method = request.method ?? 'GET';
    const span = tracer.startSpan(
      method,
      {
        kind: api.SpanKind.SERVER,
        attributes: { 'http.request.method': method, 'url.path': urlForLog(request.url ?? '').split('?')[0] },
      },
      parent,
    );
    const { traceId, spanId, traceFlags } = span.spanContext();
    const parentSpan = api.trace.getSpanContext(parent);
    return {
      context: {
        traceId,
        spanId,
        flags: traceFlags.toString(16).padStart(2, '0'),
        ...(parentSpan ? { parentSpanId: parentSpan.spanId } : {}),
      },
      end({ statusCode, route }) {
        if (route) {
          span.updateName(`${method} ${route}`);
          span.setAttribute('http.route', route);
        }
        span.setAttribute('http.response.status_code', statusCode);
        if (statusCode >= 500) span.setStatus({ code: api.SpanStatusCode.ERROR });
        span.end();
      },
    };
  });

  return {
    async shutdown() {
      useSpanStarter(undefined);
      await provider.shutdown();
    },
  };
}
