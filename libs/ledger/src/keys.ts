// The Ed25519 ledger key: from CONNECT_LEDGER_KEY, or generated once into the data directory.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fromBase64, type SigningKey, signingKeyFromSeed, toBase64 } from '@connect/crypto';
import { readOrCreateSecretFile } from '@connect/db';

export const KEY_FILE = 'ledger-key';

export async function loadLedgerKey(options: {
  origin: string;
  dataDir: string;
  /** base64 of a 32-byte seed (CONNECT_LEDGER_KEY). */
  seed?: string | undefined;
}): Promise<SigningKey> {
  if (options.seed) return signingKeyFromSeed(options.origin, fromBase64(options.seed));
  const file = path.join(options.dataDir, KEY_FILE);
  const seed = (await readOrCreateSecretFile(file, () => `${toBase64(randomBytes(32))}\n`)).trim();
  try {
    return signingKeyFromSeed(options.origin, fromBase64(seed));
  } catch {
    throw new Error(`${file} does not hold the base64 of a 32-byte Ed25519 seed`);
  }
}
