// The Ed25519 ledger key: from CONNECT_LEDGER_KEY, or generated once into the data directory.
import { createPrivateKey, sign as nodeSign, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fromBase64, type SigningKey, signingKeyFromSeed, toBase64 } from '@connect/crypto';
import { readOrCreateSecretFile } from '@connect/db';
import { withNativeVerifier } from './native-crypto.ts';

export const KEY_FILE = 'ledger-key';

// PKCS #8 wrapping of a raw Ed25519 seed (RFC 8410): this prefix, then the 32 seed bytes.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The key with Node's native Ed25519 as its signer (and verifier): the same signatures, many times faster. */
export function withNativeSigner(key: SigningKey): SigningKey {
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, key.seed]),
    format: 'der',
    type: 'pkcs8',
  });
  return withNativeVerifier({ ...key, signer: (message) => nodeSign(null, message, privateKey) });
}

interface KeyOptions {
  origin: string;
  dataDir: string;
  /** base64 of a 32-byte seed (CONNECT_LEDGER_KEY). */
  seed?: string | undefined;
}

export async function loadLedgerKey(options: KeyOptions): Promise<SigningKey> {
  if (options.seed) return withNativeSigner(signingKeyFromSeed(options.origin, fromBase64(options.seed)));
  const file = path.join(options.dataDir, KEY_FILE);
  const seed = await readOrCreateSecretFile(file, () => `${toBase64(randomBytes(32))}\n`);
  return keyFromFile(options.origin, file, seed);
}

/** The key loadLedgerKey would give, without generating one: undefined when there is none yet. */
export async function findLedgerKey(options: KeyOptions): Promise<SigningKey | undefined> {
  if (options.seed) return loadLedgerKey(options);
  const file = path.join(options.dataDir, KEY_FILE);
  try {
    return keyFromFile(options.origin, file, await readFile(file, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function keyFromFile(origin: string, file: string, seed: string): SigningKey {
  try {
    return withNativeSigner(signingKeyFromSeed(origin, fromBase64(seed.trim())));
  } catch {
    throw new Error(`${file} does not hold the base64 of a 32-byte Ed25519 seed`);
  }
}
