import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import path from 'node:path';
import { formatVerifierKey } from '@connect/crypto';
import { loadConfig, MASTER_KEY_FILE, migrate, openDatabase } from '@connect/db';
import {
  exportLedger,
  exportMasterKeyIds,
  findLedgerKey,
  ImportRefused,
  importLedger,
  openBodyCipher,
  readExportHeader,
  signerMismatch,
} from '@connect/ledger';

/**
 * connect export FILE: the whole ledger as JSON Lines (its origin and verifier key first, then
 * entries with bodies and signed checkpoints), to move it to another database; not a backup.
 */
export async function exportCommand(args: string[]): Promise<number> {
  const file = args[0];
  if (!file) throw new Error('usage: connect export FILE');
  const database = await openDatabase(loadConfig(process.env), { create: false });
  try {
    const out = createWriteStream(file, { mode: 0o600 });
    const count = await exportLedger(database.db, async (line) => {
      if (!out.write(line)) await once(out, 'drain');
    });
    out.end();
    await once(out, 'finish');
    console.log(`exported ${count} entries to ${file}`);
    return 0;
  } finally {
    await database.close();
  }
}

/**
 * connect import FILE: into an empty database, after checking every hash and signature; refused
 * before anything is written (no database, no key file) unless this process will sign with the
 * export's key, so the checkpoints it signs later verify under the key clients already pinned.
 */
export async function importCommand(args: string[]): Promise<number> {
  const file = args[0];
  if (!file) throw new Error('usage: connect import FILE');
  const config = loadConfig(process.env);
  const key = await findLedgerKey({
    origin: config.ledgerOrigin,
    dataDir: config.dataDir,
    seed: config.ledgerKey,
  });
  const signer = { origin: config.ledgerOrigin, verifierKey: key && formatVerifierKey(key) };
  const refusal = signerMismatch(await readExportHeader(file), signer);
  if (refusal) throw new ImportRefused(refusal);
  const needed = await exportMasterKeyIds(file);
  if (needed.size > 0 && !config.masterKeys && !existsSync(path.join(config.dataDir, MASTER_KEY_FILE))) {
    throw new ImportRefused(
      `the export's bodies are sealed under master key ${[...needed].join(', ')}: set CONNECT_MASTER_KEY to it, or copy the exporting CONNECT_DATA_DIR/${MASTER_KEY_FILE} into this CONNECT_DATA_DIR`,
    );
  }
  const database = await openDatabase(config);
  const { keys, cipher } = await openBodyCipher(database.pool, config, { listen: false });
  try {
    await migrate(database.pool);
    const { entries, origin } = await importLedger(database.pool, file, signer, {
      cipher,
      masterKeys: keys.masterKeys,
    });
    console.log(`imported ${entries} entries of ${origin}; every hash and signature checked`);
    return 0;
  } finally {
    await keys.close();
    await database.close();
  }
}
