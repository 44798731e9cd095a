// CONNECT_TRUSTED_PROXIES, from the configuration to request.ip: who a request is from.
import { loadConfig } from '@connect/db';
import { afterEach, expect, test } from 'vitest';
import { createServer, serverOptionsOf } from '../src/server.ts';

let app: ReturnType<typeof createServer> | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function serverTrusting(proxies: string | undefined) {
  const config = loadConfig(proxies === undefined ? {} : { CONNECT_TRUSTED_PROXIES: proxies });
  app = createServer({ ...serverOptionsOf(config), logLevel: 'silent', checkReady: async () => undefined });
  app.get('/whoami', async (request) => ({ ip: request.ip, protocol: request.protocol }));
  const server = app;
  return (remoteAddress: string, headers: Record<string, string> = {}, url = '/whoami') =>
    server.inject({ method: 'GET', url, remoteAddress, headers });
}

test('every form the configuration accepts is one the server starts with', async () => {
  const from = serverTrusting(
    '10.0.0.0/8, 192.0.2.10, fd00::/8, ::1, 2001:db8::/32, loopback, linklocal, uniquelocal',
  );
  await app?.ready();
  const forwarded = { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https' };
  for (const proxy of ['10.1.2.3', '192.0.2.10', 'fd12::1', '2001:db8::5', '127.0.0.1', '169.254.0.9'])
    expect((await from(proxy, forwarded)).json()).toEqual({ ip: '198.51.100.7', protocol: 'https' });
  expect((await from('192.0.2.11', forwarded)).json()).toEqual({ ip: '192.0.2.11', protocol: 'http' });
});

test('unset, the forwarding headers are not believed from anyone', async () => {
  const from = serverTrusting(undefined);
  const forwarded = { 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https' };
  expect((await from('127.0.0.1', forwarded)).json()).toEqual({ ip: '127.0.0.1', protocol: 'http' });
  expect((await from('10.1.2.3', forwarded)).json()).toEqual({ ip: '10.1.2.3', protocol: 'http' });
});

test('a client names an address of its own: the nearest one not a listed proxy counts', async () => {
  const from = serverTrusting('10.0.0.0/8');
  const hops = { 'x-forwarded-for': '127.0.0.1, 198.51.100.7, 10.0.0.2' };
  expect((await from('10.1.2.3', hops)).json().ip).toBe('198.51.100.7');
});

test('without a token, /metrics is for this machine: not for a client a local proxy forwards for', async () => {
  const from = serverTrusting('loopback');
  expect((await from('127.0.0.1', {}, '/metrics')).statusCode).toBe(200);
  expect((await from('127.0.0.1', { 'x-forwarded-for': '127.0.0.1' }, '/metrics')).statusCode).toBe(200);
  expect((await from('127.0.0.1', { 'x-forwarded-for': '198.51.100.7' }, '/metrics')).statusCode).toBe(403);
  expect((await from('198.51.100.7', {}, '/metrics')).statusCode).toBe(403);
});
