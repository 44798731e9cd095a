// Which errors the projector retries rather than set a stream aside for: a lost connection stays
// one when a projection wraps it in the ProjectionError of the entry it was applying.
import { createPool } from '@connect/db';
import { expect, test } from 'vitest';
import { ProjectionError } from '../src/projection.ts';
import { isTransient } from '../src/transient.ts';

async function refusedConnection(): Promise<unknown> {
  const pool = createPool('postgresql://nobody@127.0.0.1:1/none', 1);
  try {
    return await pool.connect().catch((error: unknown) => error);
  } finally {
    await pool.end();
  }
}

test('a refused connection is transient, bare or wrapped in the entry it was met at', async () => {
  const refused = await refusedConnection();
  expect(isTransient(refused)).toBe(true);
  const wrapped = ProjectionError.of(41, refused);
  expect(wrapped.message).toMatch(/^entry 41: /);
  expect(isTransient(wrapped)).toBe(true);
});

test.each([
  Object.assign(new Error('could not serialize access due to concurrent update'), { code: '40001' }),
  Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' }),
  new Error('Connection terminated unexpectedly'),
])('"$message" is transient, wrapped or not', (error) => {
  expect(isTransient(error)).toBe(true);
  expect(isTransient(ProjectionError.of(7, error))).toBe(true);
});

test.each([
  new Error('CommitmentProposed before CommitmentDrafted'),
  Object.assign(new Error('date/time field value out of range'), { code: '22008' }),
  Object.assign(new Error('duplicate key value violates unique constraint "x"'), { code: '23505' }),
])('"$message" is about the entry: not transient, wrapped or not', (error) => {
  expect(isTransient(error)).toBe(false);
  expect(isTransient(ProjectionError.of(7, error))).toBe(false);
});

test('a chain of causes that loops back on itself ends', () => {
  const looped = new Error('first');
  const second = new Error('second', { cause: looped });
  looped.cause = second;
  expect(isTransient(looped)).toBe(false);
});
