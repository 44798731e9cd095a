// Everything a service process needs to reach the ledger, wired from the configuration.
import { type Config, createPool, type DatabaseHandle, migrate, openDatabase } from '@connect/db';
import type pg from 'pg';
import { loadLedgerKey } from './keys.ts';
import { type Ledger, openLedger } from './ledger.ts';

export interface LedgerRuntime {
  config: Config;
  database: DatabaseHandle;
  ledger: Ledger;
  /** The appends' own connections (the requests' are database.pool). */
  appendPool: pg.Pool;
  /** Waits for queued appends, closes the pool, stops an embedded PostgreSQL this process started. */
  close(): Promise<void>;
}

export async function openLedgerRuntime(config: Config): Promise<LedgerRuntime> {
  const database = await openDatabase(config);
  // Appends get connections of their own, so a batch never queues behind request traffic.
  const appendPool = createPool(database.url, 2);
  try {
    await migrate(database.pool);
    const key = await loadLedgerKey({
      origin: config.ledgerOrigin,
      dataDir: config.dataDir,
      seed: config.ledgerKey,
    });
    const ledger = await openLedger({ pool: appendPool, db: database.db, origin: config.ledgerOrigin, key });
    return {
      config,
      database,
      ledger,
      appendPool,
      close: async () => {
        await ledger.drain();
        await appendPool.end();
        await database.close();
      },
    };
  } catch (error) {
    await appendPool.end();
    await database.close();
    throw error;
  }
}
