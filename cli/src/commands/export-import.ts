import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { formatVerifierKey } from '@connect/crypto';
import { loadConfig, migrate, openDatabase } from '@connect/db';
import {
  exportLedger,
  findLedgerKey,
  ImportRefused,
  importLedger,
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
  const database = await openDatabase(config);
  try {
    await migrate(database.pool);
    const { entries, origin } = await importLedger(database.pool, file, signer);
    console.log(`imported ${entries} entries of ${origin}; every hash and signature checked`);
    return 0;
  } finally {
    await database.close();
  }
}
