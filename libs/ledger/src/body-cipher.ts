// Entry bodies at rest: the salt and data of each entry sealed under its stream's data key, bound
// to the entry's id. Headers, data hashes and leaf hashes stay in the clear, so the tree, proofs
// and checkpoints never depend on a key; an entry whose key was erased reads as redacted.
import type { JsonObject } from '@connect/crypto';
import { open, SealBroken, seal } from '@connect/crypto/envelope';
import {
  clearFields,
  type FieldCipher,
  fieldCipher,
  type KeyRing,
  type LedgerEntriesTable,
  type NewDataKey,
  openedCache,
} from '@connect/db';
import { entryFromRow } from './rows.ts';
import type { Entry } from './types.ts';

const SALT_SIZE = 16;

/** The data-key subject of a stream: one key per stream (a commitment's, a profile's…). */
export const streamKeySubject = (stream: string) => `ledger:${stream}`;

/** Where an entry's sealed body lives: the associated data that binds it to that entry. */
const bodyPlace = (id: string) => `ledger_entries:${id}`;

/** An entry's salt and data sealed with its stream's key; undefined for a body already erased. */
export function sealBody(key: Uint8Array, entry: Entry, nonce: Uint8Array): Buffer | undefined {
  const plaintext = bodyPlaintext(entry);
  return plaintext && seal(key, plaintext, bodyPlace(entry.id), nonce);
}

/** `salt ‖ data as JSON`, what a body seals; undefined for a body already erased. */
function bodyPlaintext(entry: Entry): Buffer | undefined {
  if (entry.data === null || entry.salt === null) return undefined;
  const salt = Buffer.from(entry.salt, 'base64');
  if (salt.length !== SALT_SIZE) throw new Error(`entry ${entry.id}: a salt is ${SALT_SIZE} bytes`);
  return Buffer.concat([salt, Buffer.from(JSON.stringify(entry.data))]);
}

/** The salt and data of entry `id`'s sealed body; throws SealBroken when it does not open there. */
export function openBody(
  key: Uint8Array,
  id: string,
  sealed: Uint8Array,
): { salt: Buffer; data: JsonObject } {
  return bodyOf(openSealedBody(key, id, sealed));
}

const openSealedBody = (key: Uint8Array, id: string, sealed: Uint8Array) => open(key, sealed, bodyPlace(id));

/** The salt and data of an opened body (the data parsed anew: callers may change what they get). */
const bodyOf = (plaintext: Buffer): { salt: Buffer; data: JsonObject } => ({
  salt: plaintext.subarray(0, SALT_SIZE),
  data: JSON.parse(plaintext.subarray(SALT_SIZE).toString('utf8')),
});

/** The sealed body of one entry, to store in place of its data and salt; undefined to store it as it is. */
export type SealBody = (entry: Entry) => Buffer | undefined;

/** How a batch's bodies are sealed, and the keys of its new streams that its statement stores. */
export interface Sealer {
  seal: SealBody;
  /** Keys made for new streams, by stream: stored by the statement that appends their first entries. */
  newKeys: ReadonlyMap<string, NewDataKey>;
}

export interface BodyCipher {
  /**
   * The sealer of entries of these streams; undefined when bodies are stored in the clear. A key
   * missing from this process is read or made, except for `newStreams` (streams expected to have
   * no entries yet), whose keys are made for the batch's statement to store (Sealer.newKeys).
   */
  sealerFor(streams: Iterable<string>, newStreams?: ReadonlySet<string>): Promise<Sealer | undefined>;
  /** Keeps new streams' keys once the statement that stored them has committed. */
  committed(keys: readonly NewDataKey[]): Promise<void>;
  /** Reads or makes these streams' keys ahead of their appends, so the appends find them ready. */
  prepare(streams: Iterable<string>): Promise<void>;
  /** Entries of stored rows with their bodies opened. */
  entries(rows: readonly LedgerEntriesTable[], origin: string): Promise<Entry[]>;
  /** The sensitive fields of the read models and mutable tables, under the same keys. */
  fields: FieldCipher;
}

/** Where entries are read from: the ledger's origin (for the entries' `ledger`) and how bodies open. */
export interface LedgerSource {
  origin: string;
  cipher: BodyCipher;
}

/** Reads sealed bodies with `keys`; seals new ones only when `sealNew`. */
export function bodyCipher(keys: KeyRing, options: { sealNew: boolean }): BodyCipher {
  // A body is read many times (its stream replayed per command, receipts, every follower) and
  // never changes: it is opened once, or never (the sealer keeps what it sealed).
  const opened = openedCache();
  keys.onErasure(opened.clear);
  const streamKeys = (streams: Iterable<string>) =>
    keys.keys([...new Set(streams)].map(streamKeySubject), { create: true });
  return {
    fields: fieldCipher(keys, options),
    async prepare(streams) {
      if (options.sealNew) await streamKeys(streams);
    },
    async sealerFor(streams, newStreams) {
      if (!options.sealNew) return undefined;
      const keyEpoch = opened.epoch();
      const unique = [...new Set(streams)];
      const isNew = (stream: string) =>
        newStreams?.has(stream) === true && keys.cached(streamKeySubject(stream)) === undefined;
      const newKeys = new Map(
        await Promise.all(
          unique
            .filter(isNew)
            .map(async (stream) => [stream, await keys.unstoredKey(streamKeySubject(stream))] as const),
        ),
      );
      const found = await streamKeys(unique.filter((stream) => !newKeys.has(stream)));
      for (const [stream, made] of newKeys) found.set(streamKeySubject(stream), made.key);
      const sealEntry = (entry: Entry) => {
        const key = found.get(streamKeySubject(entry.stream));
        if (!key)
          throw new Error(
            `the data key of stream ${entry.stream} is erased; nothing more can be appended to it`,
          );
        const plaintext = bodyPlaintext(entry);
        if (!plaintext) return undefined;
        const sealed = seal(key, plaintext, bodyPlace(entry.id), keys.nonce());
        // Its first reader (the projector, a follower) finds it opened. Were the append to fail, no
        // row would ever hold these bytes at this id, and the entry would only wait to be evicted.
        opened.set(entry.id, entry.stream, sealed, plaintext, keyEpoch);
        return sealed;
      };
      return { seal: sealEntry, newKeys };
    },
    committed: (made) => keys.committed(made),
    async entries(rows, origin) {
      const sealedStreams = new Set<string>();
      for (const row of rows) if (row.sealed !== null) sealedStreams.add(row.stream);
      const keyEpoch = opened.epoch();
      const found = new Map<string, Buffer | null | undefined>();
      if (sealedStreams.size > 0) {
        const byStream = [...sealedStreams];
        const stored = await keys.keys(byStream.map(streamKeySubject));
        for (const stream of byStream) found.set(stream, stored.get(streamKeySubject(stream)));
      }
      return rows.map((row) => {
        if (row.sealed === null) return entryFromRow(row, origin);
        const key = found.get(row.stream);
        if (key === undefined)
          throw new SealBroken(`${bodyPlace(row.id)} (no data key for stream ${row.stream})`);
        // Crypto-shredded: the body is gone for good, and is served as a redacted one is.
        if (key === null) return entryFromRow({ ...row, sealed: null, data: null, salt: null }, origin);
        let plaintext = opened.get(row.id, row.stream, row.sealed);
        if (!plaintext) {
          plaintext = openSealedBody(key, row.id, row.sealed);
          opened.set(row.id, row.stream, row.sealed, plaintext, keyEpoch);
        }
        const body = bodyOf(plaintext);
        return entryFromRow({ ...row, salt: body.salt, data: body.data }, origin);
      });
    },
  };
}

/** Bodies stored and read in the clear: a ledger opened without keys. It cannot read a sealed body. */
export const clearBodies: BodyCipher = {
  fields: clearFields,
  sealerFor: async () => undefined,
  committed: async () => undefined,
  prepare: async () => undefined,
  entries: async (rows, origin) =>
    rows.map((row) => {
      if (row.sealed !== null)
        throw new SealBroken(`${bodyPlace(row.id)} (this ledger was opened without its keys)`);
      return entryFromRow(row, origin);
    }),
};
