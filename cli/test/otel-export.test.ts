// `connect start` with OTEL_EXPORTER_OTLP_ENDPOINT: a request's span reaches an OTLP/HTTP receiver
// on loopback under the caller's trace id, at the latest when the process shuts down.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { call, type RunningConnect, startConnect } from './running-connect.ts';

const TRACE_ID = 'a3ce929d0e0e47364bf92f3577b34da6';

let receiver: http.Server;
let running: RunningConnect;
const spans: { traceId: string; parentSpanId?: string; name: string }[] = [];

beforeAll(async () => {
  receiver = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: { scopeSpans: { spans: typeof spans }[] }[];
        };
        spans.push(...body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)));
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  running = await startConnect({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, CONNECT_NOTIFIER: 'false' });
});
afterAll(async () => {
  await running.close();
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

test('a request’s span is exported under the trace id of its traceparent', async () => {
  const answer = await call(running, 'GET', '/v1/ledger/key', {
    headers: { traceparent: `00-${TRACE_ID}-b7ad6b7169203331-01`, 'x-request-id': 'otel-e2e' },
  });
  expect(answer.status).toBe(200);
  const spanId = String(answer.headers.get('traceresponse')).split('-')[2];
  running.child.kill('SIGTERM');
  expect(await running.exited).toBe(0);
  expect(spans).toContainEqual(
    expect.objectContaining({
      traceId: TRACE_ID,
      spanId,
      parentSpanId: 'b7ad6b7169203331',
      name: 'GET /v1/ledger/key',
    }),
  );
  const logged = running.logs.filter((line) => line.requestId === 'otel-e2e');
  expect(logged.length).toBeGreaterThan(0);
  for (const line of logged) expect(line).toMatchObject({ trace_id: TRACE_ID, span_id: spanId });
});
