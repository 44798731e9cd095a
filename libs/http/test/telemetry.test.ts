// OpenTelemetry export, against a real OTLP/HTTP receiver on loopback: a request's server span
// arrives with the trace id of the traceparent it came with, and its log lines name that span.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createServer } from '../src/server.ts';
import { startTelemetry, type Telemetry } from '../src/telemetry.ts';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_SPAN = 'b7ad6b7169203331';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
}
interface ExportRequest {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: { spans: OtlpSpan[] }[];
  }[];
}

let receiver: http.Server;
let endpoint: string;
const exports: { path: string | undefined; contentType: string | undefined; body: ExportRequest }[] = [];

beforeAll(async () => {
  receiver = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      exports.push({
        path: request.url,
        contentType: request.headers['content-type'],
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      });
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => receiver.close(resolve)));

test('without OTEL_EXPORTER_OTLP_ENDPOINT nothing starts', async () => {
  expect(await startTelemetry({})).toBeUndefined();
});

test('with it, each request’s span is exported over OTLP/HTTP under the caller’s trace', async () => {
  const telemetry = (await startTelemetry(
    { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: 'connect-test' },
    {},
  )) as Telemetry;
  expect(telemetry).toBeDefined();
  const lines: Record<string, unknown>[] = [];
  const app = createServer({
    logLevel: 'info',
    checkReady: async () => undefined,
    logStream: { write: (line: string) => lines.push(JSON.parse(line)) },
  });
  app.get('/v1/things/:id', async () => ({ ok: true }));
  try {
    const response = await app.inject({
      method: 'GET',
      url: '/v1/things/7',
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_SPAN}-01`, 'x-request-id': 'otel-1' },
    });
    expect(response.statusCode).toBe(200);
    const [, traceId, spanId] = String(response.headers.traceresponse).split('-');
    expect(traceId).toBe(TRACE_ID);
    await telemetry.shutdown(); // flushes
    expect(exports.length).toBeGreaterThan(0);
    expect(exports[0]?.path).toBe('/v1/traces');
    expect(exports[0]?.contentType).toMatch(/^application\/json/);
    const spans = exports.flatMap((e) =>
      e.body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)),
    );
    const span = spans.find((s) => s.traceId === TRACE_ID);
    expect(span).toMatchObject({ spanId, parentSpanId: PARENT_SPAN, name: 'GET /v1/things/:id', kind: 2 });
    const service = exports[0]?.body.resourceSpans[0]?.resource.attributes.find(
      (a) => a.key === 'service.name',
    );
    expect(service?.value.stringValue).toBe('connect-test');
    // The request's log lines name the exported span.
    const mine = lines.filter((line) => line.requestId === 'otel-1');
    expect(mine.length).toBeGreaterThan(0);
    for (const line of mine) expect(line).toMatchObject({ trace_id: TRACE_ID, span_id: spanId });
  } finally {
    await telemetry.shutdown();
    await app.close();
  }
});
