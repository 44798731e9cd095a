// CONNECT_TRUSTED_PROXIES: the reverse proxies whose forwarded client address is believed.
import { expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

test('unset, there are none', () => {
  expect(loadConfig({}).trustedProxies).toEqual([]);
});

test('addresses, CIDR ranges and named ranges, comma-separated', () => {
  expect(
    loadConfig({ CONNECT_TRUSTED_PROXIES: ' 10.0.0.0/8, 192.0.2.10,fd00::/8 ,::1, loopback,10.0.0.0/8' })
      .trustedProxies,
  ).toEqual(['10.0.0.0/8', '192.0.2.10', 'fd00::/8', '::1', 'loopback']);
});

test.each([
  'true',
  '*',
  '2',
  'proxy.internal',
  '10.0.0.0/33',
  'fd00::/129',
  '10.0.0.0/',
  '10.0.0.0/8/8',
  '10.0.0.256',
  'fe80::1%eth0',
  // Would trust every client.
  '0.0.0.0/0',
  '::/0',
  '::ffff:0.0.0.0/96',
  '::0.0.0.0/96',
])('%s is refused, naming the variable', (value) => {
  expect(() => loadConfig({ CONNECT_TRUSTED_PROXIES: value })).toThrow(ConfigError);
  expect(() => loadConfig({ CONNECT_TRUSTED_PROXIES: value })).toThrow(/CONNECT_TRUSTED_PROXIES: must be/);
});
