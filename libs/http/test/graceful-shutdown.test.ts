// Draining: what a server that was asked to close answers, and how long it waits for requests.
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, test } from 'vitest';
import { closeGracefully } from '../src/serve.ts';
import { createServer } from '../src/server.ts';

let app: FastifyInstance;
let port: number;
let release: () => void = () => undefined;
let started: Promise<void>;
/** Runs in a preClose hook after the server's own, i.e. once draining has begun. */
let whileDraining: () => Promise<void> = async () => undefined;

async function start(): Promise<void> {
  app = createServer({ logLevel: 'silent', checkReady: async () => ({ checked: true }) });
  let markStarted: () => void = () => undefined;
  started = new Promise((resolve) => {
    markStarted = resolve;
  });
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  app.get('/slow', async () => {
    markStarted();
    await gate;
    return { finished: true };
  });
  app.get('/unreachable', async () => {
    throw Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
  });
  app.addHook('preClose', () => whileDraining());
  port = Number(new URL(await app.listen({ port: 0, host: '127.0.0.1' })).port);
}

afterEach(async () => {
  whileDraining = async () => undefined;
  release();
  await app.close();
});

/** A raw connection: what it received so far, and whether the server closed it. */
function rawConnection() {
  const socket = net.connect(port, '127.0.0.1');
  const state = { received: '', closed: false };
  socket.on('data', (data) => {
    state.received += data.toString();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    state.closed = true;
  });
  return { socket, state, opened: new Promise((resolve) => socket.once('connect', resolve)) };
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function refused(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/** Waits until the listener is closed (a new connection is refused). */
async function untilRefused(ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await refused())) {
    if (Date.now() > deadline) throw new Error('new connections are still accepted');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('closing gracefully', () => {
  test('finishes a request under way, closing its connection after it, and refuses new connections', async () => {
    await start();
    const kept = rawConnection();
    await kept.opened;
    kept.socket.write('GET /slow HTTP/1.1\r\nhost: localhost\r\n\r\n');
    await started;

    const closed = closeGracefully(app, 5000);
    await untilRefused();
    expect(kept.state.closed).toBe(false);
    release();
    await closed;
    await until(() => kept.state.closed);
    expect(kept.state.received).toMatch(/^HTTP\/1\.1 200 /);
    expect(kept.state.received).toMatch(/\r\nconnection: close\r\n/i);
    expect(kept.state.received).toContain('{"finished":true}');
  });

  test('a request arriving on a kept-alive connection while the server drains: 503, and the connection closes', async () => {
    await start();
    const kept = rawConnection();
    await kept.opened;
    kept.socket.write('GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n');
    await until(() => kept.state.received.includes('{"status":"ok"}'));
    expect(kept.state.received).not.toMatch(/connection: close/i);
    kept.state.received = '';
    // Draining has begun (the server's own preClose hook ran) and the idle connection is still open.
    whileDraining = async () => {
      kept.socket.write('GET /readyz HTTP/1.1\r\nhost: localhost\r\n\r\n');
      await until(() => kept.state.closed);
    };
    await closeGracefully(app, 5000);
    const answer = kept.state.received;
    expect(answer).toMatch(/^HTTP\/1\.1 503 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(answer).toMatch(/content-type: application\/problem\+json/i);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    expect(body).toMatchObject({
      status: 503,
      type: '/problems/not-ready',
      detail: 'Not ready: shutting down',
    });
  });

  test('a request still running at the timeout has its connection closed, and the close completes', async () => {
    await start();
    const inFlight = rawConnection();
    await inFlight.opened;
    inFlight.socket.write('GET /slow HTTP/1.1\r\nhost: localhost\r\n\r\n');
    await started;
    const begun = Date.now();
    await closeGracefully(app, 300);
    expect(Date.now() - begun).toBeLessThan(3000);
    await until(() => inFlight.state.closed);
    expect(inFlight.state.received).toBe('');
  });

  test('a database that cannot be reached is a 503 saying so, not a 500', async () => {
    await start();
    const response = await app.inject({ method: 'GET', url: '/unreachable' });
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('1');
    expect(response.json()).toMatchObject({
      type: '/problems/not-ready',
      detail: 'The database is unreachable; try again shortly.',
    });
  });
});
