// Everything a service process needs to reach the ledger, wired from the configuration.
import {
  assertMasterKeysHeld,
  type Config,
  createPool,
  type DatabaseHandle,
  dataKeysByMasterKey,
  type KeyRing,
  keyRing,
  localMasterKeys,
  migrate,
  openDatabase,
  sealExistingEmails,
} from '@connect/db';
import type pg from 'pg';
import { type BodyCipher, bodyCipher } from './body-cipher.ts';
import { loadLedgerKey } from './keys.ts';
import { type Ledger, openLedger } from './ledger.ts';

export interface LedgerRuntime {
  config: Config;
  database: DatabaseHandle;
  ledger: Ledger;
  /** The data keys of subjects (commitments, users…), unwrapped by the master key. */
  keys: KeyRing;
  /** The appends' own connections (the requests' are database.pool). */
  appendPool: pg.Pool;
  /** Waits for queued appends, closes the pool, stops an embedded PostgreSQL this process started. */
  close(): Promise<void>;
}

/** The key ring of the configured master keys, and the ledger bodies' cipher over it. */
export async function openBodyCipher(
  pool: pg.Pool,
  config: Pick<Config, 'masterKeys' | 'dataDir' | 'encryption'>,
  /** `create: false` for a process that only reads: it makes no key file where there is none. */
  options: { listen?: boolean; create?: boolean } = {},
): Promise<{ keys: KeyRing; cipher: BodyCipher }> {
  const masterKeys = await localMasterKeys({
    keys: config.masterKeys,
    dataDir: config.dataDir,
    create: options.create,
  });
  const keys = keyRing(pool, masterKeys, { listen: options.listen });
  return { keys, cipher: bodyCipher(keys, { sealNew: config.encryption }) };
}

export async function openLedgerRuntime(config: Config): Promise<LedgerRuntime> {
  const database = await openDatabase(config);
  // Appends get connections of their own, so a batch never queues behind request traffic.
  const appendPool = createPool(database.url, 2);
  let opened: KeyRing | undefined;
  try {
    await migrate(database.pool);
    const key = await loadLedgerKey({
      origin: config.ledgerOrigin,
      dataDir: config.dataDir,
      seed: config.ledgerKey,
    });
    // A master key is made only for a database with no data keys yet: one made beside existing
    // keys would seal new data under a key that opens none of the old.
    const { keys, cipher } = await openBodyCipher(database.pool, config, {
      create: (await dataKeysByMasterKey(database.pool)).size === 0,
    });
    opened = keys;
    await assertMasterKeysHeld(database.pool, keys.masterKeys);
    // Addresses written in the clear before migration 029 are sealed before anything is served.
    await sealExistingEmails(database.pool, keys, cipher.fields);
    const ledger = await openLedger({
      pool: appendPool,
      db: database.db,
      origin: config.ledgerOrigin,
      key,
      cipher,
    });
    return {
      config,
      database,
      ledger,
      keys,
      appendPool,
      close: async () => {
        await ledger.drain();
        await keys.close();
        await appendPool.end();
        await database.close();
      },
    };
  } catch (error) {
    await opened?.close();
    await appendPool.end();
    await database.close();
    throw error;
  }
}
