// Sealed fields for tests that call the notifier's stores directly: a key ring on the test
// database with its own master key, and a look at what a row holds at rest.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type FieldCipher, fieldCipher, type KeyRing, keyRing, localMasterKeys } from '@connect/db';
import type pg from 'pg';

export interface SealedFields {
  keys: KeyRing;
  /** Seals new values (encryption on). */
  cipher: FieldCipher;
  close(): Promise<void>;
}

export async function sealedFields(pool: pg.Pool): Promise<SealedFields> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-notifier-keys-'));
  const keys = keyRing(pool, await localMasterKeys({ dataDir }), { listen: false });
  return {
    keys,
    cipher: fieldCipher(keys, { sealNew: true }),
    close: async () => {
      await keys.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Whether the rows a query selects hold `text` at rest: in their text form, or in any bytea
 * column's bytes (which the text form shows in hex).
 */
export async function rowsHold(
  pool: pg.Pool,
  query: string,
  params: unknown[],
  text: string,
): Promise<boolean> {
  const { rows } = await pool.query<{ row: string }>(`select t::text as row from (${query}) t`, params);
  if (rows.length === 0) throw new Error(`no rows for ${query}`);
  const hex = Buffer.from(text, 'utf8').toString('hex');
  return rows.some(({ row }) => row.includes(text) || row.toLowerCase().includes(hex));
}
