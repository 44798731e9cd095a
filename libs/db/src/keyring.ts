// The data keys of subjects (a commitment, a user…), kept wrapped in data_keys and unwrapped
// here on first use. An erased subject's key is gone for every process: the erase NOTIFYs, and a
// process whose LISTEN was down forgets every key it held when LISTEN is back.
import { deriveKey, KEY_SIZE, NONCE_SIZE } from '@connect/crypto/envelope';
import type pg from 'pg';
import { KEYS_ERASED_CHANNEL } from './channels.ts';
import { groupedCalls } from './grouped-calls.ts';
import { type Listener, listen } from './listen.ts';
import type { MasterKeys } from './master-keys.ts';
import { named } from './named-statements.ts';
import { randomPool } from './random-pool.ts';

export interface KeyRing {
  /** The data keys of these subjects, null for an erased one; missing keys are made when `create`. */
  keys(subjects: readonly string[], options?: { create?: boolean }): Promise<Map<string, Buffer | null>>;
  /** A key for `purpose` (blind indexes…) that stays the same across master key rotations. */
  derivedKey(purpose: string): Promise<Buffer>;
  /** A fresh nonce for sealing. */
  nonce(): Buffer;
  /** A subject's key if this process holds it: null for an erased one, undefined when not held. */
  cached(subject: string): Buffer | null | undefined;
  /**
   * A key for a subject that has none yet, not stored: the caller inserts its row
   * (insertDataKeysSql) in the transaction that first seals with it, so the key is durable exactly
   * when what it sealed is, without a commit of its own; and hands it to `committed` once that
   * transaction has committed.
   */
  unstoredKey(subject: string): Promise<NewDataKey>;
  /** Keys from unstoredKey whose rows have committed: kept, and wrapped again if a rotation began. */
  committed(keys: readonly NewDataKey[]): Promise<void>;
  /** Drops a subject from this process's cache (its erase is committed). */
  forget(subject: string): void;
  /**
   * Calls `listener` whenever a key may have been erased (one was, or erasures went unheard for a
   * while): whatever was opened with keys and kept in the clear must then be dropped.
   */
  onErasure(listener: () => void): void;
  masterKeys: MasterKeys;
  close(): Promise<void>;
}

/** A data key made here, with its row as stored: wrapped under a master key. */
export interface NewDataKey {
  subject: string;
  key: Buffer;
  wrapped: Buffer;
  masterKeyId: string;
}

/**
 * The insert of new keys' rows, for a statement of the caller's: `subjects`, `wrapped` and `ids`
 * are its three array parameters (dataKeyRows), inserted where `condition` holds. Rows go in
 * sorted by subject: two transactions inserting the same subjects in different orders would each
 * wait on a key the other had inserted first.
 */
export const insertDataKeysSql = (subjects: string, wrapped: string, ids: string, condition = 'true') =>
  `insert into data_keys (subject, wrapped_key, master_key_id)
   select * from unnest(${subjects}::text[], ${wrapped}::bytea[], ${ids}::text[]) as k(subject)
   where ${condition} order by subject`;

/** The three array parameters of insertDataKeysSql. */
export const dataKeyRows = (keys: readonly NewDataKey[]): [string[], Buffer[], string[]] => [
  keys.map((k) => k.subject),
  keys.map((k) => k.wrapped),
  keys.map((k) => k.masterKeyId),
];

/** Where a data key is wrapped: its associated data, so a wrapped key cannot move to another subject. */
export const dataKeyPlace = (subject: string) => `data_keys:${subject}`;
/** The subject whose key roots the derived keys (blind indexes). */
const DERIVATION_ROOT = 'connect:derivation-root';
/** Unwrapped keys kept per process; beyond it the oldest used is dropped. */
const CACHE_SIZE = 100_000;
/** Nonces drawn from the CSPRNG at a time. */
const NONCES_PER_DRAW = 512;
/** New data keys drawn from the CSPRNG at a time. */
const KEYS_PER_DRAW = 128;

export function keyRing(pool: pg.Pool, masterKeys: MasterKeys, options: { listen?: boolean } = {}): KeyRing {
  const cache = new Map<string, Buffer | null>();
  const nonces = randomPool(NONCE_SIZE * NONCES_PER_DRAW);
  // Data keys are drawn apart from nonces, and each is copied into memory of its own and wiped
  // from the draw: an erased key must not stay reachable through a sibling's buffer.
  const keyDraws = randomPool(KEY_SIZE * KEYS_PER_DRAW);
  const newKey = () => {
    const drawn = keyDraws(KEY_SIZE);
    const key = Buffer.allocUnsafeSlow(KEY_SIZE);
    drawn.copy(key);
    drawn.fill(0);
    return key;
  };
  const derived = new Map<string, Buffer>();
  // Bumped by every erasure heard and every gap in hearing them: a key read before the bump is
  // used once by its reader but not cached, since it may be one erased meanwhile.
  let generation = 0;
  const erasureListeners = new Set<() => void>();
  /** The generation each key made here was made in: it is kept only if no erasure was heard since. */
  const madeIn = new WeakMap<NewDataKey, number>();
  // Keys being read or made, by subject: a second caller waits for that round trip instead of
  // making its own (several appends to one stream, the rows of one subject sealed at once).
  const making = new Map<string, Promise<Buffer | null | undefined>>();
  const erased = () => {
    generation++;
    // A key being read may be one just erased: later callers read it again rather than join.
    making.clear();
    for (const listener of erasureListeners) listener();
  };
  const remember = (subject: string, key: Buffer | null) => {
    cache.delete(subject);
    cache.set(subject, key);
    if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  };
  const forgetAll = () => {
    cache.clear();
    erased();
  };
  const listener: Listener | undefined =
    options.listen === false
      ? undefined
      : listen(pool, [KEYS_ERASED_CHANNEL], (message) => forget(message.payload ?? ''), {
          onListening: forgetAll,
          onDown: forgetAll,
        });
  /** Keys are cached only while erasures are heard (or by a ring that does not listen: tests, one-off commands). */
  const mayCache = () => !listener || listener.isListening();

  function forget(subject: string): void {
    cache.delete(subject);
    erased();
  }

  type KeyRow = { subject: string; wrapped_key: Buffer | null; master_key_id: string | null };

  /** Unwraps rows as read; caches them unless an erasure was heard since `started`. */
  async function unwrapRows(rows: KeyRow[], started: number): Promise<Map<string, Buffer | null>> {
    const loaded = new Map<string, Buffer | null>();
    for (const row of rows) {
      loaded.set(
        row.subject,
        row.wrapped_key && row.master_key_id
          ? await masterKeys.unwrap(row.wrapped_key, row.master_key_id, dataKeyPlace(row.subject))
          : null,
      );
    }
    if (generation === started && mayCache()) for (const [subject, key] of loaded) remember(subject, key);
    return loaded;
  }

  async function load(subjects: string[]): Promise<Map<string, Buffer | null>> {
    const started = generation;
    const { rows } = await pool.query<KeyRow>(
      named({
        name: 'keyring-read',
        text: 'select subject, wrapped_key, master_key_id from data_keys where subject = any($1::text[])',
        values: [subjects],
      }),
    );
    return unwrapRows(rows, started);
  }

  /**
   * Reads these subjects' keys and makes the missing ones in one round trip: the insert skips
   * subjects that have a key, and the select (which sees the rows as they were before the insert)
   * returns those. A subject another process is making at the same moment is in neither: it is
   * read once that process has committed.
   */
  async function loadOrCreate(subjects: string[]): Promise<Map<string, Buffer | null>> {
    const started = generation;
    const made = await Promise.all(subjects.map(unstoredKey));
    const { rows } = await pool.query<KeyRow & { made: boolean }>(
      named({
        name: 'keyring-read-or-make',
        text: `with made as (
         ${insertDataKeysSql('$1', '$2', '$3')}
         on conflict (subject) do nothing
         returning subject)
       select subject, null::bytea as wrapped_key, null::text as master_key_id, true as made from made
       union all
       select subject, wrapped_key, master_key_id, false from data_keys where subject = any($1::text[])`,
        values: dataKeyRows(made),
      }),
    );
    const inserted = new Set(rows.filter((row) => row.made).map((row) => row.subject));
    const found = await unwrapRows(
      rows.filter((row) => !row.made),
      started,
    );
    const mine = made.filter((m) => inserted.has(m.subject));
    await keep(mine);
    for (const m of mine) found.set(m.subject, m.key);
    const racing = subjects.filter((subject) => !found.has(subject));
    if (racing.length > 0) for (const [subject, key] of await load(racing)) found.set(subject, key);
    return found;
  }

  async function unstoredKey(subject: string): Promise<NewDataKey> {
    const started = generation;
    const key = newKey();
    const made = { subject, key, ...(await masterKeys.wrap(key, dataKeyPlace(subject))) };
    madeIn.set(made, started);
    return made;
  }

  /**
   * Keeps keys this process made and stored. A rotation may have begun while they were wrapped:
   * those wrapped by a key no longer the primary are wrapped again (this process still holds them
   * in the clear), so none is left under a master key the rotation then drops.
   */
  async function keep(made: readonly NewDataKey[]): Promise<void> {
    if (made.length === 0) return;
    const primary = await masterKeys.primaryId();
    for (const m of made) {
      if (m.masterKeyId !== primary) {
        const again = await masterKeys.wrap(m.key, dataKeyPlace(m.subject));
        await pool.query(
          'update data_keys set wrapped_key = $2, master_key_id = $3 where subject = $1 and wrapped_key = $4',
          [m.subject, again.wrapped, again.masterKeyId, m.wrapped],
        );
      }
      if (generation === madeIn.get(m) && mayCache()) remember(m.subject, m.key);
    }
  }

  /**
   * Keys made (or found made) in groups: the subjects asked for while one round trip runs go in
   * the next, so a burst of new commitments makes their keys in a few statements, not one each.
   */
  const loadOrCreateOne = groupedCalls(
    async (subjects: readonly string[]) => {
      const found = await loadOrCreate([...new Set(subjects)]);
      return subjects.map((subject) => found.get(subject));
    },
    { isolateFailures: true },
  );

  async function keys(subjects: readonly string[], options: { create?: boolean } = {}) {
    // Nearly every call finds all its keys cached: answered without the round trip's bookkeeping.
    const found = new Map<string, Buffer | null>();
    const uncached: string[] = [];
    for (const subject of subjects) {
      const key = cache.get(subject);
      if (key !== undefined) found.set(subject, key);
      else uncached.push(subject);
    }
    if (uncached.length > 0) await readOrMake(uncached, found, options.create ?? false);
    return found;
  }

  /** Adds to `found` the keys of subjects not cached: read, joined while being made, or made. */
  async function readOrMake(subjects: readonly string[], found: Map<string, Buffer | null>, make: boolean) {
    const missing: string[] = [];
    const joined: Promise<void>[] = [];
    for (const subject of new Set(subjects)) {
      const inFlight = make ? making.get(subject) : undefined;
      if (inFlight)
        joined.push(
          inFlight.then((made) => {
            if (made !== undefined) found.set(subject, made);
          }),
        );
      else missing.push(subject);
    }
    // Handled now, awaited last: a joined load that fails first must not go unhandled meanwhile.
    const joinedAll = Promise.all(joined);
    joinedAll.catch(() => undefined);
    if (missing.length > 0 && make) {
      const mine = missing.map((subject) => {
        const one = loadOrCreateOne(subject);
        one.catch(() => undefined); // the caller below gets the error; joiners get it from `one`
        making.set(subject, one);
        return [subject, one] as const;
      });
      try {
        for (const [subject, one] of mine) {
          const key = await one;
          if (key !== undefined) found.set(subject, key);
        }
      } finally {
        for (const [subject, one] of mine) if (making.get(subject) === one) making.delete(subject);
      }
    } else if (missing.length > 0) {
      for (const [subject, key] of await load(missing)) found.set(subject, key);
    }
    await joinedAll;
  }

  return {
    keys,
    async derivedKey(purpose) {
      const known = derived.get(purpose);
      if (known) return known;
      const root = (await keys([DERIVATION_ROOT], { create: true })).get(DERIVATION_ROOT);
      if (!root) throw new Error('the derivation root key is erased');
      const key = deriveKey(root, purpose);
      derived.set(purpose, key);
      return key;
    },
    nonce: () => nonces(NONCE_SIZE),
    cached: (subject) => cache.get(subject),
    unstoredKey,
    committed: keep,
    forget,
    onErasure: (listener) => {
      erasureListeners.add(listener);
    },
    masterKeys,
    close: async () => {
      await listener?.close();
    },
  };
}

/**
 * Destroys a subject's data key in the caller's transaction; every process forgets it once the
 * transaction commits. False when there was no live key.
 */
export async function eraseDataKey(client: pg.ClientBase, subject: string): Promise<boolean> {
  const { rowCount } = await client.query(
    `update data_keys set wrapped_key = null, master_key_id = null, erased_at = now()
     where subject = $1 and wrapped_key is not null`,
    [subject],
  );
  await client.query('select pg_notify($1, $2)', [KEYS_ERASED_CHANNEL, subject]);
  return (rowCount ?? 0) > 0;
}

/**
 * Wraps every live data key not yet under the primary master key again under it, a page at a
 * time, while services keep running (each row changes only if still as read). Returns how many.
 */
export async function rewrapDataKeys(pool: pg.Pool, masterKeys: MasterKeys): Promise<number> {
  const primary = await masterKeys.primaryId();
  let rewrapped = 0;
  for (;;) {
    const { rows } = await pool.query<{ subject: string; wrapped_key: Buffer; master_key_id: string }>(
      `select subject, wrapped_key, master_key_id from data_keys
       where wrapped_key is not null and master_key_id <> $1 limit 500`,
      [primary],
    );
    if (rows.length === 0) return rewrapped;
    for (const row of rows) {
      const key = await masterKeys.unwrap(row.wrapped_key, row.master_key_id, dataKeyPlace(row.subject));
      const { wrapped, masterKeyId } = await masterKeys.wrap(key, dataKeyPlace(row.subject));
      const { rowCount } = await pool.query(
        `update data_keys set wrapped_key = $2, master_key_id = $3
         where subject = $1 and master_key_id = $4 and wrapped_key = $5`,
        [row.subject, wrapped, masterKeyId, row.master_key_id, row.wrapped_key],
      );
      rewrapped += rowCount ?? 0;
    }
  }
}

/**
 * Throws naming the master keys that wrap live data keys and that `masterKeys` does not hold: a
 * process must not start without them (what it sealed anew would be under another key, and what
 * exists could not be read).
 */
export async function assertMasterKeysHeld(pool: pg.Pool, masterKeys: MasterKeys): Promise<void> {
  const missing: string[] = [];
  for (const id of (await dataKeysByMasterKey(pool)).keys())
    if (!(await masterKeys.has(id))) missing.push(id);
  if (missing.length > 0) {
    throw new Error(
      `data keys are wrapped by master key ${missing.join(', ')}, which is not configured: set CONNECT_MASTER_KEY ` +
        '(during a rotation NEW,OLD) or put back CONNECT_DATA_DIR/master-key; nothing sealed can be read without it',
    );
  }
}

/** How many live data keys each master key wraps. */
export async function dataKeysByMasterKey(pool: pg.Pool): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ master_key_id: string; n: number }>(
    'select master_key_id, count(*)::int as n from data_keys where wrapped_key is not null group by master_key_id',
  );
  return new Map(rows.map((row) => [row.master_key_id, row.n]));
}
