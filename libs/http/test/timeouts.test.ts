import net from 'node:net';
import { loadConfig } from '@connect/db';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createServer, DEFAULT_HTTP_TIMEOUTS } from '../src/server.ts';

const REQUEST_MS = 1500;
const HEADERS_MS = 500;
const KEEP_ALIVE_MS = 500;

let app: FastifyInstance;
let port: number;

beforeAll(async () => {
  app = createServer({
    logLevel: 'silent',
    checkReady: async () => {},
    timeouts: { requestMs: REQUEST_MS, headersMs: HEADERS_MS, keepAliveMs: KEEP_ALIVE_MS },
  });
  app.post('/echo', async (request) => request.body);
  port = Number(new URL(await app.listen({ port: 0, host: '127.0.0.1' })).port);
});
afterAll(() => app.close());

/** Writes `text`, then waits for the server to close the connection; what came back, and when. */
function closedBy(text: string): Promise<{ answer: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let answer = '';
    socket.on('data', (data) => {
      answer += data.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ answer, ms: Date.now() - started }));
    // Far longer than any timeout here: a hang fails the test instead of stalling it.
    setTimeout(() => socket.destroy(new Error('the server kept the connection open')), 10_000).unref();
  });
}

describe('a slow client is cut off', () => {
  test('a body that never finishes: 408 and closed after the request timeout', async () => {
    const { answer, ms } = await closedBy(
      'POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"a":',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeGreaterThanOrEqual(REQUEST_MS - 100);
    expect(ms).toBeLessThan(REQUEST_MS + 1500);
  });

  test('headers that never finish: 408 and closed after the headers timeout', async () => {
    const { answer, ms } = await closedBy('POST /echo HTTP/1.1\r\nhost: localhost\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeLessThan(HEADERS_MS + 1500);
  });

  test('an idle keep-alive connection is closed after the keep-alive timeout', async () => {
    const { answer, ms } = await closedBy('GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(ms).toBeLessThan(KEEP_ALIVE_MS + 1500);
  });

  test('a complete request in time is answered as usual', async () => {
    const response = await fetch(`http://127.0.0.1:${port}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(await response.json()).toEqual({ a: 1 });
  });
});

test('the defaults apply without options, and come from CONNECT_*_TIMEOUT_MS', async () => {
  const plain = createServer({ checkReady: async () => {}, logLevel: 'silent' });
  expect(plain.server.requestTimeout).toBe(DEFAULT_HTTP_TIMEOUTS.requestMs);
  expect(plain.server.headersTimeout).toBe(DEFAULT_HTTP_TIMEOUTS.headersMs);
  expect(plain.server.keepAliveTimeout).toBe(DEFAULT_HTTP_TIMEOUTS.keepAliveMs);
  await plain.close();

  expect(loadConfig({}).httpTimeouts).toEqual(DEFAULT_HTTP_TIMEOUTS);
  expect(
    loadConfig({
      CONNECT_REQUEST_TIMEOUT_MS: '300000',
      CONNECT_HEADERS_TIMEOUT_MS: '20000',
      CONNECT_KEEP_ALIVE_TIMEOUT_MS: '1000',
    }).httpTimeouts,
  ).toEqual({ requestMs: 300_000, headersMs: 20_000, keepAliveMs: 1000 });
  expect(() => loadConfig({ CONNECT_REQUEST_TIMEOUT_MS: '10' })).toThrow(/CONNECT_REQUEST_TIMEOUT_MS/);
});
