// CONNECT_CORS_ORIGINS: exact browser origins, validated at start.
import { expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

test('unset, there are none', () => {
  expect(loadConfig({}).corsOrigins).toEqual([]);
});

test('comma-separated origins, normalised as browsers send them', () => {
  expect(
    loadConfig({
      CONNECT_CORS_ORIGINS: 'https://App.Example.com/, http://localhost:5173,https://app.example.com:443',
    }).corsOrigins,
  ).toEqual(['https://app.example.com', 'http://localhost:5173']);
});

test.each([
  'app.example.com',
  'ftp://app.example.com',
  'https://app.example.com/app',
  'https://app.example.com?x=1',
  'https://user@app.example.com',
  'https://app.example.com\\evil',
  '*',
])('%s is refused, naming the variable', (value) => {
  expect(() => loadConfig({ CONNECT_CORS_ORIGINS: value })).toThrow(ConfigError);
  expect(() => loadConfig({ CONNECT_CORS_ORIGINS: value })).toThrow(/CONNECT_CORS_ORIGINS: must be/);
});
