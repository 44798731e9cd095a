import fc from 'fast-check';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { type BinaryElementType, type BinaryElementValues, binaryArray } from '../src/index.ts';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 1 });
});

afterAll(async () => {
  await database.close();
});

/** Each element as PostgreSQL reads it from the binary array, in its text form (null for NULL). */
async function received<T extends BinaryElementType>(
  type: T,
  values: readonly BinaryElementValues[T][],
): Promise<(string | null)[]> {
  const { rows } = await database.pool.query<{ value: string | null }>(
    `select value::text from unnest($1::${type}[]) with ordinality as a (value, n) order by n`,
    [binaryArray(type, values)],
  );
  return rows.map((row) => row.value);
}

test('each element type reaches PostgreSQL as the value it is, NULLs and all', async () => {
  expect(await received('int2', [0, -32768, 32767, null])).toEqual(['0', '-32768', '32767', null]);
  expect(await received('int4', [1, -2147483648, 2147483647])).toEqual(['1', '-2147483648', '2147483647']);
  expect(await received('int8', [Number.MAX_SAFE_INTEGER, -1, null])).toEqual([
    '9007199254740991',
    '-1',
    null,
  ]);
  expect(await received('text', ['plain', 'quote " and \\ backslash', 'ünïcødé ✓ 🎉', '', null])).toEqual([
    'plain',
    'quote " and \\ backslash',
    'ünïcødé ✓ 🎉',
    '',
    null,
  ]);
  expect(await received('uuid', ['0190a6b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b', null])).toEqual([
    '0190a6b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b',
    null,
  ]);
  expect(await received('jsonb', ['{"b":"say \\"hi\\"","a":[1,null]}', 'null', null])).toEqual([
    '{"a": [1, null], "b": "say \\"hi\\""}',
    'null',
    null,
  ]);
  expect(await received('bytea', [Uint8Array.of(0, 255, 92, 34), new Uint8Array(0), null])).toEqual([
    '\\x00ff5c22',
    '\\x',
    null,
  ]);
});

test('a time keeps its instant to the millisecond, whatever zone it is written in', async () => {
  const { rows } = await database.pool.query<{ at: Date }>(
    'select at from unnest($1::timestamptz[]) with ordinality as a (at, n) order by n',
    [binaryArray('timestamptz', ['2026-12-01T17:05:09.123Z', '1999-12-31T23:59:59.999+02:00', new Date(0)])],
  );
  expect(rows.map((row) => row.at.toISOString())).toEqual([
    '2026-12-01T17:05:09.123Z',
    '1999-12-31T21:59:59.999Z',
    '1970-01-01T00:00:00.000Z',
  ]);
});

test('an empty array is an array with no elements', async () => {
  const { rows } = await database.pool.query<{ n: number | null; empty: boolean }>(
    `select cardinality($1::bytea[]) as n, $1::bytea[] = '{}' as empty`,
    [binaryArray('bytea', [])],
  );
  expect(rows[0]).toEqual({ n: 0, empty: true });
});

test('any text comes back exactly as it went (property)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.option(fc.string({ unit: 'grapheme' }).filter((s) => !s.includes('\0')))),
      async (values) => {
        expect(await received('text', values)).toEqual(values);
      },
    ),
    { numRuns: 50 },
  );
});

test('a value that does not fit its type is refused here, before any statement', () => {
  expect(() => binaryArray('int2', [32768])).toThrow(RangeError);
  expect(() => binaryArray('int4', [1.5])).toThrow(RangeError);
  expect(() => binaryArray('int8', [2 ** 60])).toThrow(RangeError);
  expect(() => binaryArray('uuid', ['not-a-uuid'])).toThrow(RangeError);
  expect(() => binaryArray('timestamptz', ['yesterday'])).toThrow(RangeError);
});
