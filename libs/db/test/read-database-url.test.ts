// READ_DATABASE_URL: the read replica's address, validated at start; the error never echoes it.
import { expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

test('unset, reads stay on DATABASE_URL', () => {
  expect(loadConfig({}).readDatabaseUrl).toBeUndefined();
});

test('a postgres URL is kept as given', () => {
  const url = 'postgresql://connect:secret@replica.internal:5432/connect';
  expect(loadConfig({ READ_DATABASE_URL: url }).readDatabaseUrl).toBe(url);
});

test('anything else is refused, naming the variable and not the value', () => {
  const bad = 'mysql://connect:hunter2@replica/connect';
  expect(() => loadConfig({ READ_DATABASE_URL: bad })).toThrow(ConfigError);
  expect(() => loadConfig({ READ_DATABASE_URL: bad })).toThrow(/READ_DATABASE_URL: must be a postgres/);
  expect(() => loadConfig({ READ_DATABASE_URL: bad })).not.toThrow(/hunter2/);
});
