import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
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
    case '/close':
      response.setHeader('connection', 'close');
      response.end('bye');
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

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('every scheduled request is sent with its headers and answered, whatever the framing', async () => {
  seen.length = 0;
  const paths = ['/length', '/chunked', '/close', '/missing'];
  let i = 0;
  const run = await openLoop(
    url,
    200,
    1,
    () => ({ path: paths[i++ % paths.length] as string, headers: { authorization: `Bearer ${i}` } }),
    0.5,
  );
  // 100 warm-up requests, then 200 counted: a quarter of them to a route that is not there.
  expect(seen).toHaveLength(300);
  expect(seen[0]).toBe('/length Bearer 1');
  expect(seen[299]).toBe('/missing Bearer 300');
  expect(run.non2xx).toBe(50);
  expect(run.latenciesMs).toHaveLength(200);
  expect(run.latenciesMs).toEqual([...run.latenciesMs].sort((a, b) => a - b));
});

test('a latency is counted from the request’s scheduled time, and includes the server’s wait', async () => {
  const run = await openLoop(url, 100, 1, () => ({ path: '/slow' }), 0);
  expect(run.non2xx).toBe(0);
  expect(run.latenciesMs).toHaveLength(100);
  expect(run.latenciesMs[0]).toBeGreaterThanOrEqual(29);
  expect(run.latenciesMs[99]).toBeLessThan(1000);
});
