import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { loadConfig, migrate, openDatabase } from '@connect/db';
import { exportLedger, importLedger } from '@connect/ledger';

/** connect export FILE: the whole ledger as JSON Lines (entries with bodies, signed checkpoints). */
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

/** connect import FILE: into an empty database, after checking every hash and signature. */
export async function importCommand(args: string[]): Promise<number> {
  const file = args[0];
  if (!file) throw new Error('usage: connect import FILE');
  const database = await openDatabase(loadConfig(process.env));
  try {
    await migrate(database.pool);
    const { entries, origin } = await importLedger(database.pool, file);
    console.log(`imported ${entries} entries of ${origin}; every hash and signature checked`);
    return 0;
  } finally {
    await database.close();
  }
}
