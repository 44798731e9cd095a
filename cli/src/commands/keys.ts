import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatVerifierKey } from '@connect/crypto';
import { dataKeyId } from '@connect/crypto/envelope';
import {
  addPrimaryMasterKey,
  assertMasterKeysHeld,
  assertMigrated,
  dataKeysByMasterKey,
  dropOldMasterKeys,
  loadConfig,
  localMasterKeys,
  MASTER_KEY_FILE,
  type MasterKeys,
  openDatabase,
  readMasterKeyFile,
  rewrapDataKeys,
  sealClearFields,
} from '@connect/db';
import { loadLedgerKey, openBodyCipher } from '@connect/ledger';
import type pg from 'pg';

const USAGE = 'usage: connect keys show | status | rotate-master | seal-existing';
const SUBCOMMANDS = ['show', 'status', 'rotate-master', 'seal-existing'];

/** Running processes re-read the key file at most once a second; this leaves them time to. */
const PICKUP_MS = 2000;
/** Rewrap rounds, each checked a second later, for keys a process wrapped with an old master key meanwhile. */
const ROUNDS = 10;

/** connect keys show | status | rotate-master | seal-existing */
export async function keysCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (rest.length > 0 || !SUBCOMMANDS.includes(sub ?? '')) {
    console.error(`connect: ${USAGE}`);
    return 2;
  }
  if (sub === 'show') return keysShow();
  const config = loadConfig(process.env);
  const database = await openDatabase(config, { create: false });
  try {
    await assertMigrated(database.pool);
    if (sub === 'seal-existing') return await sealExisting(database.pool, config);
    const source = config.masterKeys
      ? { keys: config.masterKeys, name: 'CONNECT_MASTER_KEY' }
      : await keyFile(config.dataDir);
    if (!source) {
      console.error(
        `connect: no master key file ${path.join(config.dataDir, MASTER_KEY_FILE)} and CONNECT_MASTER_KEY is unset; ` +
          'point CONNECT_DATA_DIR at the service’s data directory, or set CONNECT_MASTER_KEY as the service has it',
      );
      return 1;
    }
    // Checks the keys: 32 bytes of base64 each.
    const masterKeys = await localMasterKeys({ keys: config.masterKeys, dataDir: config.dataDir });
    const ids = source.keys.map((key) => dataKeyId(Buffer.from(key, 'base64')));
    if (sub === 'status') return await status(database.pool, ids, source.name);
    const missing = [...(await dataKeysByMasterKey(database.pool)).keys()].filter((id) => !ids.includes(id));
    if (missing.length > 0) {
      console.error(
        `connect: data keys are wrapped by master key${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, ` +
          `not in ${source.name}; add ${missing.length > 1 ? 'them' : 'it'} after the first key and run again`,
      );
      return 1;
    }
    // One rotation at a time: two would each drop the key the other just made primary.
    const lock = await database.pool.connect();
    try {
      const { rows } = await lock.query<{ locked: boolean }>(
        "select pg_try_advisory_lock(hashtext('connect keys rotate-master')) as locked",
      );
      if (!rows[0]?.locked) {
        console.error('connect: another connect keys rotate-master is running; run this one when it ends');
        return 1;
      }
      return config.masterKeys
        ? await rotateListed(database.pool, masterKeys, ids)
        : await rotateFile(database.pool, config.dataDir, ids);
    } finally {
      await lock
        .query("select pg_advisory_unlock(hashtext('connect keys rotate-master'))")
        .catch(() => undefined);
      lock.release();
    }
  } finally {
    await database.close();
  }
}

/**
 * Seals the values still in the clear (converted by a migration, or written with encryption off),
 * beside the running service; prints how many rows of each table it sealed.
 */
async function sealExisting(pool: pg.Pool, config: ReturnType<typeof loadConfig>): Promise<number> {
  if (!config.encryption) {
    console.error('connect: CONNECT_ENCRYPTION is off, so nothing is sealed; turn it on first');
    return 1;
  }
  const { keys, cipher } = await openBodyCipher(pool, config, { listen: false, create: false });
  try {
    await assertMasterKeysHeld(pool, keys.masterKeys);
    for (const [table, count] of await sealClearFields(pool, cipher.fields))
      console.log(`${table}: ${count} sealed`);
    return 0;
  } finally {
    await keys.close();
  }
}

/** Prints the verifier key: the public half, safe to publish; clients pin it. */
export async function keysShow(): Promise<number> {
  const config = loadConfig(process.env);
  const key = await loadLedgerKey({
    origin: config.ledgerOrigin,
    dataDir: config.dataDir,
    seed: config.ledgerKey,
  });
  console.log(formatVerifierKey(key));
  return 0;
}

/** The data directory's master keys (base64, primary first), if the file exists. */
async function keyFile(dataDir: string): Promise<{ keys: string[]; name: string } | undefined> {
  const keys = await readMasterKeyFile(dataDir);
  return keys && { keys, name: path.join(dataDir, MASTER_KEY_FILE) };
}

/** The primary, and how many data keys each master key wraps; exit 1 when one is not configured. */
async function status(pool: pg.Pool, ids: string[], source: string): Promise<number> {
  const counts = await dataKeysByMasterKey(pool);
  console.log(`master keys from ${source}; the primary, ${ids[0]}, wraps new data keys`);
  for (const [i, id] of ids.entries()) {
    console.log(`${id}  ${counts.get(id) ?? 0} data keys${i === 0 ? '  (primary)' : '  (unwraps only)'}`);
  }
  const missing = [...counts].filter(([id]) => !ids.includes(id));
  for (const [id, count] of missing)
    console.log(`${id}  ${count} data keys  (NOT CONFIGURED: they cannot be read)`);
  return missing.length > 0 ? 1 : 0;
}

/**
 * Rewraps until, a second after a round, no live data key is under a master key other than the
 * primary: a process that had not yet seen the new primary may have wrapped one with an old key
 * meanwhile. Returns how many were rewrapped, and what is still under other keys at the end.
 */
async function rewrapAll(pool: pg.Pool, masterKeys: MasterKeys) {
  const primary = await masterKeys.primaryId();
  let rewrapped = 0;
  let left = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    rewrapped += await rewrapDataKeys(pool, masterKeys);
    await sleep(1000);
    left = await dataKeysByMasterKey(pool);
    left.delete(primary);
    if (left.size === 0) break;
  }
  return { rewrapped, left };
}

/** Key file: a new primary first in the file, every data key rewrapped, then the old keys dropped. */
async function rotateFile(pool: pg.Pool, dataDir: string, oldIds: string[]): Promise<number> {
  const file = path.join(dataDir, MASTER_KEY_FILE);
  const newId = await addPrimaryMasterKey(dataDir);
  console.log(`new primary master key ${newId} added to ${file}; old: ${oldIds.join(', ')}`);
  await sleep(PICKUP_MS);
  // Held here, so a key wrapped late with an old master key still opens after the file drops it.
  const current = await keyFile(dataDir);
  if (!current) throw new Error(`${file} disappeared during the rotation`);
  const masterKeys = await localMasterKeys({ keys: current.keys, dataDir });
  if ((await masterKeys.primaryId()) !== newId) {
    console.error(
      `connect: ${file} changed during the rotation (another rotation?); run connect keys status`,
    );
    return 1;
  }
  const first = await rewrapAll(pool, masterKeys);
  if (first.left.size > 0) {
    console.error(
      `connect: ${first.rewrapped} data keys rewrapped, but new ones are still wrapped by ${[...first.left.keys()].join(', ')}; ` +
        `a process is not reading ${file} (another data directory?). The old keys stay in the file; run again once it does`,
    );
    return 1;
  }
  await dropOldMasterKeys(dataDir);
  const late = await rewrapAll(pool, masterKeys);
  const rewrapped = first.rewrapped + late.rewrapped;
  console.log(`${rewrapped} data keys rewrapped from ${oldIds.join(', ')} to ${newId}`);
  if (late.left.size > 0) {
    console.error(
      `connect: data keys wrapped by ${[...late.left.keys()].join(', ')} appeared after the old keys left ${file}; ` +
        'a process is not reading that file: restore the old keys from a backup of the file before restarting it',
    );
    return 1;
  }
  console.log(`old master keys removed from ${file}: only ${newId} remains; take a new backup`);
  return 0;
}

/** CONNECT_MASTER_KEY: every data key rewrapped to the first key; the operator then removes the others. */
async function rotateListed(pool: pg.Pool, masterKeys: MasterKeys, ids: string[]): Promise<number> {
  const [newId, ...oldIds] = ids;
  const { rewrapped, left } = await rewrapAll(pool, masterKeys);
  console.log(`${rewrapped} data keys rewrapped to ${newId}`);
  if (left.size > 0) {
    console.error(
      `connect: new data keys are still wrapped by ${[...left.keys()].join(', ')}: restart every service with ` +
        `CONNECT_MASTER_KEY listing ${newId} first, then run again`,
    );
    return 1;
  }
  if (oldIds.length === 0) {
    console.log(`every data key is wrapped by ${newId}, the only key in CONNECT_MASTER_KEY`);
  } else {
    console.log(
      `every data key is wrapped by ${newId}: remove ${oldIds.join(', ')} from CONNECT_MASTER_KEY ` +
        '(keep the old key with the backups taken before now) and restart the services',
    );
  }
  return 0;
}
