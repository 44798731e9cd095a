import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type BenchUser, measureCommandsMix } from '../commands.ts';

// A stand-in for the command API's four routes: 200 ms an answer through the warm-up, then 5 ms.
let startedAt = 0;
const steps: string[] = [];
const server = http.createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    steps.push(`${request.method} ${request.url?.replace(/[0-9a-f-]{36}/, ':id')}`);
    const answer = () => {
      if (request.url === '/v1/commitments')
        response.end(JSON.stringify({ commitmentId: crypto.randomUUID() }));
      else if (request.url?.startsWith('/v1/commitments/')) response.end('{}');
      else {
        response.statusCode = 404;
        response.end();
      }
    };
    setTimeout(answer, performance.now() - startedAt < 1500 ? 200 : 5);
  });
});
let url = '';

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const users: BenchUser[] = Array.from({ length: 8 }, (_, i) => ({
  token: `token-${i}`,
  id: crypto.randomUUID(),
  email: `user${i}@bench.test`,
}));

test('only what is answered after the warm-up is counted, in one run of the mix', async () => {
  startedAt = performance.now();
  const figures = await measureCommandsMix(url, users, 4, 1.5, 1);

  // Counted, the warm-up's 200 ms answers (about 30) would be several percent of the run's.
  expect(figures.p99).toBeLessThan(100);
  expect(figures.ok).toBeGreaterThan(100);
  expect(figures.non2xx).toBe(0);
  expect(figures.errors).toBe(0);
  // Each connection begins with a create; invite, propose and accept then name a commitment's id.
  expect(steps.slice(0, 4).sort()).toEqual(Array(4).fill('POST /v1/commitments'));
  expect(new Set(steps)).toEqual(
    new Set([
      'POST /v1/commitments',
      'POST /v1/commitments/:id/invite',
      'POST /v1/commitments/:id/propose',
      'POST /v1/commitments/:id/accept',
    ]),
  );
});
