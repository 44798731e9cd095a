// The master keys that wrap every data key. They never enter the database. Behind MasterKeys so a
// cloud KMS can take their place: only wrap and unwrap are asked of it.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { dataKeyId, NONCE_SIZE, open, seal } from '@connect/crypto/envelope';
import { randomPool } from './random-pool.ts';
import { readOrCreateSecretFile, replaceSecretFile } from './secret-file.ts';

export interface MasterKeys {
  /** Seals a data key under the primary master key, bound to `place`. */
  wrap(dataKey: Uint8Array, place: string): Promise<{ wrapped: Buffer; masterKeyId: string }>;
  /** Opens a data key wrapped by the master key `masterKeyId` at `place`. */
  unwrap(wrapped: Uint8Array, masterKeyId: string, place: string): Promise<Buffer>;
  /** The id of the key new data keys are wrapped with. */
  primaryId(): Promise<string>;
  /** Whether data keys wrapped by the master key `masterKeyId` can be unwrapped. */
  has(masterKeyId: string): Promise<boolean>;
}

export const MASTER_KEY_FILE = 'master-key';

/** One key per line, base64; the first is the primary. */
const parseKeys = (text: string, where: string): Buffer[] => {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const keys = lines.map((line) => Buffer.from(line, 'base64'));
  if (keys.length === 0 || keys.some((key, i) => key.length !== 32 || key.toString('base64') !== lines[i])) {
    throw new Error(`${where} must hold base64 keys of 32 bytes, one per line`);
  }
  return keys;
};

/** The base64 keys of the data directory's key file, primary first; undefined when there is none. */
export async function readMasterKeyFile(dataDir: string): Promise<string[] | undefined> {
  const file = path.join(dataDir, MASTER_KEY_FILE);
  if (!existsSync(file)) return undefined;
  return parseKeys(await readFile(file, 'utf8'), file).map((key) => key.toString('base64'));
}

/** Changes when the file is replaced or written. */
const versionOf = async (file: string) => {
  const { ino, mtimeMs, size } = await stat(file);
  return `${ino}:${mtimeMs}:${size}`;
};

const formatKeys = (keys: readonly Uint8Array[]) =>
  keys.map((key) => `${Buffer.from(key).toString('base64')}\n`).join('');

/**
 * Master keys held by this process: CONNECT_MASTER_KEY when set, or else the data directory's
 * key file, made once (mode 0600) like the ledger key. The file is read again when it changes,
 * so a rotation reaches running processes without a restart.
 */
export async function localMasterKeys(options: {
  keys?: readonly string[];
  dataDir: string;
  /** Whether to make the key file when there is none (false: a process that only reads holds no key then). */
  create?: boolean;
}): Promise<MasterKeys> {
  const file = path.join(options.dataDir, MASTER_KEY_FILE);
  let keys: Buffer[];
  let fileVersion = '';
  let checkedAt = 0;
  // A data key made is wrapped at once: a CSPRNG draw per nonce showed in bulk key making.
  const nonces = randomPool(NONCE_SIZE * 512);

  if (options.keys) {
    keys = parseKeys(options.keys.join('\n'), 'CONNECT_MASTER_KEY');
  } else if (options.create === false && !existsSync(file)) {
    keys = [];
  } else {
    keys = parseKeys(await readOrCreateSecretFile(file, () => formatKeys([randomBytes(32)])), file);
    fileVersion = await versionOf(file);
  }
  // Each key by its id (an HMAC, computed once per key set), the primary first.
  const byId = () => new Map(keys.map((key) => [dataKeyId(key), key]));
  let ids = byId();

  /** Re-reads the file when it changed (at most once a second unless `force`). */
  async function refresh(force: boolean): Promise<void> {
    if (options.keys || (!force && Date.now() - checkedAt < 1000) || !existsSync(file)) return;
    checkedAt = Date.now();
    const modified = await versionOf(file);
    if (modified === fileVersion && !force) return;
    keys = parseKeys(await readFile(file, 'utf8'), file);
    fileVersion = modified;
    ids = byId();
  }

  const primary = () => {
    const [first] = ids;
    if (!first) throw new Error(`there is no master key (CONNECT_MASTER_KEY or ${file})`);
    const [id, key] = first;
    return { key, id };
  };
  return {
    async wrap(dataKey, place) {
      await refresh(false);
      const { key, id } = primary();
      return { wrapped: seal(key, dataKey, place, nonces(NONCE_SIZE)), masterKeyId: id };
    },
    async unwrap(wrapped, masterKeyId, place) {
      if (!ids.has(masterKeyId)) await refresh(true);
      const key = ids.get(masterKeyId);
      if (!key) {
        throw new Error(
          `the master key ${masterKeyId} that wrapped this data key is not configured (CONNECT_MASTER_KEY or ${file})`,
        );
      }
      return open(key, wrapped, place);
    },
    async primaryId() {
      await refresh(false);
      return primary().id;
    },
    async has(masterKeyId) {
      if (!ids.has(masterKeyId)) await refresh(true);
      return ids.has(masterKeyId);
    },
  };
}

/**
 * Puts a new primary key first in the data directory's key file, keeping the others for
 * unwrapping until every data key is rewrapped; returns the new key's id.
 */
export async function addPrimaryMasterKey(dataDir: string): Promise<string> {
  const file = path.join(dataDir, MASTER_KEY_FILE);
  const current = parseKeys(await readFile(file, 'utf8'), file);
  const next = randomBytes(32);
  await replaceKeyFile(file, [next, ...current]);
  return dataKeyId(next);
}

/** Keeps only the primary key in the data directory's key file (after a complete rewrap). */
export async function dropOldMasterKeys(dataDir: string): Promise<void> {
  const file = path.join(dataDir, MASTER_KEY_FILE);
  const [primary] = parseKeys(await readFile(file, 'utf8'), file);
  await replaceKeyFile(file, [primary as Buffer]);
}

const replaceKeyFile = (file: string, keys: readonly Uint8Array[]) =>
  replaceSecretFile(file, formatKeys(keys));
