// CONNECT_READ_POOL_SIZE and CONNECT_READ_TIMEOUT_MS: the connections the query service reads through.
import { expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

test('unset, 20', () => {
  expect(loadConfig({}).readPoolSize).toBe(20);
});

test('a size is kept as given', () => {
  expect(loadConfig({ CONNECT_READ_POOL_SIZE: '12' }).readPoolSize).toBe(12);
});

test('no connections, a fraction or a word is refused, naming the variable', () => {
  for (const bad of ['0', '2.5', 'many']) {
    expect(() => loadConfig({ CONNECT_READ_POOL_SIZE: bad })).toThrow(ConfigError);
    expect(() => loadConfig({ CONNECT_READ_POOL_SIZE: bad })).toThrow(/CONNECT_READ_POOL_SIZE/);
  }
});

test('a read’s time limit: 10 s unset, else as given; below 100 ms, a fraction or a word is refused', () => {
  expect(loadConfig({}).readTimeoutMs).toBe(10_000);
  expect(loadConfig({ CONNECT_READ_TIMEOUT_MS: '2500' }).readTimeoutMs).toBe(2500);
  for (const bad of ['50', '2.5', 'long', '600001']) {
    expect(() => loadConfig({ CONNECT_READ_TIMEOUT_MS: bad })).toThrow(/CONNECT_READ_TIMEOUT_MS/);
  }
});
