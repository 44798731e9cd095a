// The Ed25519 ledger key: from CONNECT_LEDGER_KEY, or generated once into the data directory.
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fromBase64, type SigningKey, signingKeyFromSeed, toBase64 } from '@connect/crypto';

export const KEY_FILE = 'ledger-key';

export async function loadLedgerKey(options: {
  origin: string;
  dataDir: string;
  /** base64 of a 32-byte seed (CONNECT_LEDGER_KEY). */
  seed?: string | undefined;
}): Promise<SigningKey> {
  if (options.seed) return signingKeyFromSeed(options.origin, fromBase64(options.seed));
  const file = path.join(options.dataDir, KEY_FILE);
  const seed = await readOrCreateSeed(file);
  try {
    return signingKeyFromSeed(options.origin, fromBase64(seed));
  } catch {
    throw new Error(`${file} does not hold the base64 of a 32-byte Ed25519 seed`);
  }
}

async function readOrCreateSeed(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(path.dirname(file), { recursive: true });
  // Written whole to a private file, then linked into place: link fails if a key exists, so two
  // processes starting together keep one key and neither reads a half-written file.
  const draft = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(draft, `${toBase64(randomBytes(32))}\n`, { flag: 'wx', mode: 0o600 });
  try {
    await link(draft, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await unlink(draft);
  }
  return (await readFile(file, 'utf8')).trim();
}
