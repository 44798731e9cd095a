import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { generate } from '../open-loop-generator.ts';
import { openLoop } from '../support.ts';

const seen: string[] = [];
const server = http.createServer((request, response) => {
  seen.push(`${request.url} ${request.headers.authorization ?? ''}`);
  switch (request.url) {
    case '/length':
      response.end('{"ok":true}');
      return;
    case '/chunked':
      response.write('a');
      setTimeout(() => {
        response.write('bb');
        response.end('ccc');
      }, 5);
      return;
    case '/trailers':
      response.setHeader('trailer', 'x-checksum');
      response.write('body');
      response.addTrailers({ 'x-checksum': 'abc' });
      response.end();
      return;
    case '/empty':
      response.statusCode = 204;
      response.end();
      return;
    case '/close':
      response.setHeader('connection', 'close');
      response.end('bye');
      return;
    case '/reset':
      request.socket.destroy();
      return;
    case '/slow':
      setTimeout(() => response.end('late'), 30);
      return;
    default:
      response.statusCode = 404;
      response.end();
  }
});
let url = '';
let port = 0;

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  url = `http://127.0.0.1:${port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('every scheduled request is sent with its headers, and each answer is framed and counted', async () => {
  seen.length = 0;
  const paths = ['/length', '/chunked', '/trailers', '/empty', '/close', '/missing', '/reset'];
  let i = 0;
  const startedAt = performance.now();
  const countingAt: number[] = [];
  const run = await openLoop(
    url,
    210,
    1,
    () => ({ path: paths[i++ % paths.length] as string, headers: { authorization: `Bearer ${i}` } }),
    0.5,
    () => countingAt.push(performance.now()),
  );
  // Told once, as the warm-up's half second ends and the counted second begins.
  expect(countingAt).toHaveLength(1);
  expect((countingAt[0] as number) - startedAt).toBeGreaterThanOrEqual(500);
  expect(performance.now() - (countingAt[0] as number)).toBeGreaterThanOrEqual(800);
  // 105 warm-up requests, then 210 counted, 30 to each path.
  expect(seen).toHaveLength(315);
  expect(seen[0]).toBe('/length Bearer 1');
  expect(seen[314]).toBe('/reset Bearer 315');
  // Not found, and not answered at all (no latency for those).
  expect(run.non2xx).toBe(60);
  expect(run.latenciesMs).toHaveLength(180);
});

test('a latency counts from the request’s scheduled time, not from when a socket was free to send it', async () => {
  // One socket, 100 requests a second of 30 ms each: the last is sent about 2 s after its time.
  const requests = Array.from({ length: 100 }, () => `GET /slow HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`);
  const run = await generate({ host: '127.0.0.1', port, rate: 100, requests, warmUp: 0, maxSockets: 1 });
  const latencies = [...run.latenciesMs].sort((a, b) => a - b);
  expect(run.non2xx).toBe(0);
  expect(latencies).toHaveLength(100);
  expect(latencies[0]).toBeGreaterThanOrEqual(29);
  expect(latencies[99]).toBeGreaterThan(1500);
});

test('a request that cannot be sent as it is written is refused before anything is sent', async () => {
  seen.length = 0;
  await expect(
    openLoop(url, 10, 1, () => ({ path: '/length', headers: { authorization: 'a\r\nx-injected: 1' } }), 0),
  ).rejects.toThrow(/cannot send/);
  expect(seen).toHaveLength(0);
});
