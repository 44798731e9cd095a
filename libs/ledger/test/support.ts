import { signingKeyFromSeed } from '@connect/crypto';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import { type Ledger, openLedger } from '../src/index.ts';

export const ORIGIN = 'test.connect.local/ledger';
export const KEY = signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(7));

export async function ledgerOn(database: TestDatabase, maxBatchEvents?: number): Promise<Ledger> {
  return openLedger({ pool: database.pool, db: database.db, origin: ORIGIN, key: KEY, maxBatchEvents });
}

export async function testLedger(options: { poolSize?: number } = {}) {
  const database = await createTestDatabase(options);
  const ledger = await ledgerOn(database);
  return { database, ledger };
}

export const event = (type: string, data: Record<string, string | number> = {}) => ({ type, data });
