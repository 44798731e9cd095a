import { createScratchDatabase, type DatabaseHandle } from '@connect/db';
import { inject } from 'vitest';

export type TestDatabase = DatabaseHandle;

/** A fresh, migrated database on the run's PostgreSQL; files using their own run in parallel. */
export function createTestDatabase(options: { poolSize?: number } = {}): Promise<TestDatabase> {
  return createScratchDatabase(inject('adminUrl'), 'connect_test', options.poolSize ?? 10);
}
