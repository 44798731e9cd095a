// Everything a service process needs to reach the ledger, wired from the configuration.
import { type Config, type DatabaseHandle, migrate, openDatabase } from '@connect/db';
import { loadLedgerKey } from './keys.ts';
import { type Ledger, openLedger } from './ledger.ts';

export interface LedgerRuntime {
  config: Config;
  database: DatabaseHandle;
  ledger: Ledger;
  /** Waits for queued appends, closes the pool, stops an embedded PostgreSQL this process started. */
  close(): Promise<void>;
}

export async function openLedgerRuntime(config: Config): Promise<LedgerRuntime> {
  const database = await openDatabase(config);
  try {
    await migrate(database.pool);
    const key = await loadLedgerKey({
      origin: config.ledgerOrigin,
      dataDir: config.dataDir,
      seed: config.ledgerKey,
    });
    const ledger = await openLedger({
      pool: database.pool,
      db: database.db,
      origin: config.ledgerOrigin,
      key,
    });
    return {
      config,
      database,
      ledger,
      close: async () => {
        await ledger.drain();
        await database.close();
      },
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}
