// What a one-off command that reads the ledger opens: the service's database (never created here)
// and the key ring that opens its sealed bodies (no key file made, no LISTEN).
import { type Config, type DatabaseHandle, openDatabase } from '@connect/db';
import { type BodyCipher, openBodyCipher } from '@connect/ledger';

export interface LedgerReader {
  database: DatabaseHandle;
  cipher: BodyCipher;
  /** Closes the key ring, then the database. */
  close(): Promise<void>;
}

export async function openLedgerReader(config: Config): Promise<LedgerReader> {
  const database = await openDatabase(config, { create: false });
  try {
    const { keys, cipher } = await openBodyCipher(database.pool, config, { listen: false, create: false });
    return {
      database,
      cipher,
      async close() {
        await keys.close();
        await database.close();
      },
    };
  } catch (error) {
    // A master key that cannot be opened must not leave the database's connection open.
    await database.close();
    throw error;
  }
}
