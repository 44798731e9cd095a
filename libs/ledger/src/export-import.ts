// The whole ledger as JSON Lines, and back: for moving a ledger to another database, signed by the
// same key (not a backup: it holds no users, sessions or documents). The first line says which
// ledger it is (origin, verifier key, size); an import re-checks every hash and every signature of
// the file before it writes anything, only into an empty ledger, and only for a process that will
// sign with the export's key, since checkpoints it signs later must verify under the same key.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  appendLeaf,
  bodyProblem,
  entryLeafHash,
  equalBytes,
  type HashedNode,
  openCheckpoint,
  parseVerifierKey,
  rootFromPeaks,
  toBase64,
} from '@connect/crypto';
import { NONCE_SIZE } from '@connect/crypto/envelope';
import { type Database, dataKeyPlace, type MasterKeys } from '@connect/db';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { type BodyCipher, clearBodies, openBody, sealBody, streamKeySubject } from './body-cipher.ts';
import { readHead } from './head.ts';
import { ENTRY_ROWS_SQL, entryFromRow, entryRowValues } from './rows.ts';
import type { Entry } from './types.ts';

export const EXPORT_FORMAT = 'connect-ledger-export/1';

/** The first line. Exports from before `format` and `exportedAt` have the rest and still import. */
export interface ExportHeader {
  kind: 'ledger';
  format?: string;
  origin: string;
  verifierKey: string;
  treeSize: number;
  rootHash: string;
  exportedAt?: string;
}

/** A stream's data key as the ledger keeps it: wrapped by a master key, or null once erased. */
export interface ExportKey {
  kind: 'key';
  subject: string;
  wrappedKey: string | null;
  masterKeyId: string | null;
}

/** An entry as stored: a sealed body (base64) in place of data and salt, or its body in the clear. */
export type ExportEntry = { kind: 'entry' } & Entry & { sealed?: string };

export type ExportLine =
  | ExportHeader
  | ExportKey
  | ExportEntry
  | { kind: 'checkpoint'; treeSize: number; note: string };

/** Writes every line of the export through `write`, streaming (constant memory). */
export async function exportLedger(
  db: Kysely<Database>,
  write: (line: string) => Promise<void> | void,
  exportedAt: Date = new Date(),
): Promise<number> {
  const head = await readHead(db);
  if (!head) throw new Error('there is no ledger to export');
  const emit = (line: ExportLine) => write(`${JSON.stringify(line)}\n`);
  await emit({
    kind: 'ledger',
    format: EXPORT_FORMAT,
    exportedAt: exportedAt.toISOString(),
    origin: head.origin,
    verifierKey: head.verifierKey,
    treeSize: head.treeSize,
    rootHash: toBase64(head.rootHash),
  });
  // Each checkpoint follows the entry that brings the tree to its size, so an import checks it
  // against the root it has just computed, holding nothing but the tree's peaks.
  let pending: { tree_size: number; note: string }[] = [];
  let nextSize = 0;
  const emitCheckpointsUpTo = async (size: number) => {
    for (;;) {
      if (pending.length === 0) {
        pending = await db
          .selectFrom('ledger_checkpoints')
          .select(['tree_size', 'note'])
          .where('tree_size', '>=', nextSize)
          .orderBy('tree_size')
          .limit(5000)
          .execute();
        if (pending.length === 0) return;
      }
      const checkpoint = pending[0] as { tree_size: number; note: string };
      if (checkpoint.tree_size > size) return;
      pending.shift();
      nextSize = checkpoint.tree_size + 1;
      await emit({ kind: 'checkpoint', treeSize: checkpoint.tree_size, note: checkpoint.note });
    }
  };
  // The streams' keys as stored (wrapped), then the entries as stored (sealed): an export holds
  // no plaintext an encrypted ledger does not, and opens only with the master key.
  for (let after = ''; ; ) {
    const keys = await db
      .selectFrom('data_keys')
      .select(['subject', 'wrapped_key', 'master_key_id'])
      .where('subject', 'like', `${streamKeySubject('')}%`)
      .where('subject', '>', after)
      .orderBy('subject')
      .limit(5000)
      .execute();
    if (keys.length === 0) break;
    for (const key of keys) {
      await emit({
        kind: 'key',
        subject: key.subject,
        wrappedKey: key.wrapped_key && toBase64(key.wrapped_key),
        masterKeyId: key.master_key_id,
      });
    }
    after = keys.at(-1)?.subject as string;
  }
  await emitCheckpointsUpTo(0);
  let count = 0;
  for (let from = 0; from < head.treeSize; ) {
    const page = await db
      .selectFrom('ledger_entries')
      .selectAll()
      .where('index', '>=', from)
      .orderBy('index')
      .limit(5000)
      .execute();
    if (page.length === 0) break;
    for (const row of page) {
      const entry = entryFromRow(row, head.origin);
      await emit(
        row.sealed
          ? { kind: 'entry', ...entry, redacted: false, sealed: toBase64(row.sealed) }
          : { kind: 'entry', ...entry },
      );
      await emitCheckpointsUpTo(entry.index + 1);
    }
    count += page.length;
    from += page.length;
  }
  return count;
}

export class ImportError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

async function* lines(file: string): AsyncGenerator<[number, ExportLine]> {
  let number = 0;
  for await (const text of createInterface({
    input: createReadStream(file),
    crlfDelay: Number.POSITIVE_INFINITY,
  })) {
    number++;
    if (text.trim() === '') continue;
    try {
      yield [number, JSON.parse(text) as ExportLine];
    } catch {
      throw new ImportError(number, 'not JSON');
    }
  }
}

interface Pass {
  onKey?(key: ExportKey, unwrapped: Buffer | null): Promise<void> | void;
  onEntry?(entry: Entry, completed: HashedNode[], sealed: Buffer | undefined): Promise<void> | void;
  onCheckpoint?(checkpoint: { treeSize: number; note: string; rootHash: Uint8Array }): Promise<void> | void;
}

function checkedHeader(number: number, line: ExportLine): ExportHeader {
  if (line?.kind !== 'ledger') {
    throw new ImportError(number, 'the file must start with the ledger line: is this a `connect export`?');
  }
  if (line.format !== undefined && line.format !== EXPORT_FORMAT) {
    throw new ImportError(
      number,
      `the export's format is ${line.format}; this connect reads ${EXPORT_FORMAT}`,
    );
  }
  try {
    parseVerifierKey(line.verifierKey);
  } catch (error) {
    throw new ImportError(number, `the ledger line's verifier key: ${(error as Error).message}`);
  }
  return line;
}

/** The export's first line: which ledger it holds and the key its checkpoints are signed with. */
export async function readExportHeader(file: string): Promise<ExportHeader> {
  for await (const [number, line] of lines(file)) return checkedHeader(number, line);
  throw new ImportError(0, 'the file is empty');
}

/** Why a process signing as `signer` must not import this export, or undefined when it may. */
export function signerMismatch(
  header: ExportHeader,
  signer: { origin: string; verifierKey: string | undefined },
): string | undefined {
  if (header.origin !== signer.origin) {
    return `the export is of ledger "${header.origin}" but CONNECT_LEDGER_ORIGIN is "${signer.origin}"; set CONNECT_LEDGER_ORIGIN to "${header.origin}"`;
  }
  if (header.verifierKey !== signer.verifierKey) {
    const yours = signer.verifierKey
      ? `the key this import would sign with is ${signer.verifierKey}`
      : 'there is no ledger key here yet';
    return `the export is signed with ${header.verifierKey}, and ${yours}; set CONNECT_LEDGER_KEY to the exporting ledger's key (base64 seed) or copy its CONNECT_DATA_DIR/ledger-key into this CONNECT_DATA_DIR`;
  }
  return undefined;
}

/**
 * Reads the file once, checking everything; the callbacks see only what has been checked. Sealed
 * bodies are opened with the streams' keys, unwrapped by `masterKeys`, to check their data hashes.
 */
async function readChecked(file: string, pass: Pass = {}, masterKeys?: MasterKeys) {
  let header: ExportHeader | undefined;
  let peaks: HashedNode[] = [];
  let size = 0;
  const streamKeys = new Map<string, Buffer | null>();
  for await (const [number, line] of lines(file)) {
    if (!header) {
      header = checkedHeader(number, line);
      continue;
    }
    if (line.kind === 'key') {
      if (size > 0) throw new ImportError(number, 'the keys come before the entries');
      const unwrapped = await unwrapExportKey(number, line, masterKeys);
      streamKeys.set(line.subject, unwrapped);
      await pass.onKey?.(line, unwrapped);
    } else if (line.kind === 'entry') {
      if (line.index !== size) throw new ImportError(number, `expected entry ${size}, found ${line.index}`);
      if (line.ledger !== header.origin)
        throw new ImportError(number, `entry ${line.index} is of another ledger`);
      const sealed = line.sealed === undefined ? undefined : Buffer.from(line.sealed, 'base64');
      const body = bodyProblem(sealed ? openExportBody(number, line, sealed, streamKeys) : line);
      if (body) throw new ImportError(number, `entry ${line.index}: ${body}`);
      const leaf = entryLeafHash(line);
      if (toBase64(leaf) !== line.leafHash)
        throw new ImportError(number, `entry ${line.index}: leaf hash does not match its header`);
      const appended = appendLeaf(peaks, size, leaf);
      peaks = appended.peaks;
      size++;
      const { kind: _kind, sealed: _sealed, ...entry } = line;
      await pass.onEntry?.(
        entry,
        appended.completed.filter((node) => node.level > 0),
        sealed,
      );
    } else if (line.kind === 'checkpoint') {
      const key = parseVerifierKey(header.verifierKey);
      let opened: ReturnType<typeof openCheckpoint>;
      try {
        opened = openCheckpoint(line.note, [key]);
      } catch (error) {
        throw new ImportError(number, `checkpoint ${line.treeSize}: ${(error as Error).message}`);
      }
      const root = rootFromPeaks(peaks);
      if (opened.treeSize !== line.treeSize || line.treeSize !== size || !equalBytes(root, opened.rootHash)) {
        throw new ImportError(number, `checkpoint ${line.treeSize} does not match the entries`);
      }
      await pass.onCheckpoint?.({ treeSize: line.treeSize, note: line.note, rootHash: opened.rootHash });
    } else {
      throw new ImportError(number, `unexpected line kind ${(line as { kind: string }).kind}`);
    }
  }
  if (!header) throw new ImportError(0, 'the file is empty');
  if (size !== header.treeSize || toBase64(rootFromPeaks(peaks)) !== header.rootHash) {
    throw new ImportError(
      0,
      `the ledger line says ${header.treeSize} entries and root ${header.rootHash}; the entries give ${size}`,
    );
  }
  return { header, size, rootHash: rootFromPeaks(peaks) };
}

async function unwrapExportKey(number: number, line: ExportKey, masterKeys: MasterKeys | undefined) {
  if (line.wrappedKey === null || line.masterKeyId === null) return null;
  if (!masterKeys) throw new ImportError(number, `the export's keys need master key ${line.masterKeyId}`);
  try {
    return await masterKeys.unwrap(
      Buffer.from(line.wrappedKey, 'base64'),
      line.masterKeyId,
      dataKeyPlace(line.subject),
    );
  } catch (error) {
    throw new ImportError(number, `the key of ${line.subject}: ${(error as Error).message}`);
  }
}

/** The entry with its sealed body opened (or as redacted, when its stream's key was erased). */
function openExportBody(number: number, line: ExportEntry, sealed: Buffer, keys: Map<string, Buffer | null>) {
  const key = keys.get(streamKeySubject(line.stream));
  if (key === undefined)
    throw new ImportError(number, `entry ${line.index}: no key line for stream ${line.stream}`);
  if (key === null) return { data: null, salt: null, dataHash: line.dataHash };
  try {
    const body = openBody(key, line.id, sealed);
    return { data: body.data, salt: toBase64(body.salt), dataHash: line.dataHash };
  } catch (error) {
    throw new ImportError(number, `entry ${line.index}: ${(error as Error).message}`);
  }
}

/** The master key ids the export's data keys are wrapped with (to refuse early when one is missing). */
export async function exportMasterKeyIds(file: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const [, line] of lines(file)) {
    if (line.kind === 'entry') break;
    if (line.kind === 'key' && line.masterKeyId) ids.add(line.masterKeyId);
  }
  return ids;
}

export class ImportRefused extends Error {}

/**
 * Imports an export into an empty ledger for a process that signs as `signer`: a first pass checks
 * every hash and signature; only then, in one transaction, are the entries, subtree hashes,
 * checkpoints and head written.
 */
export async function importLedger(
  pool: pg.Pool,
  file: string,
  signer: { origin: string; verifierKey: string | undefined },
  options: {
    /** How this ledger stores bodies: those the export holds in the clear are sealed with it. */
    cipher?: BodyCipher;
    /** Unwrap the export's data keys, to check its sealed bodies. */
    masterKeys?: MasterKeys;
  } = {},
): Promise<{ entries: number; origin: string }> {
  const { cipher = clearBodies, masterKeys } = options;
  const refusal = signerMismatch(await readExportHeader(file), signer);
  if (refusal) throw new ImportRefused(refusal);
  const { header, size, rootHash } = await readChecked(file, {}, masterKeys);
  const client = await pool.connect();
  try {
    await client.query('begin');
    const { rows } = await client.query<{ n: number }>('select count(*)::int as n from ledger_entries');
    if ((rows[0]?.n ?? 0) > 0) throw new Error('the ledger is not empty: import only into a new database');
    await client.query('set local session_replication_role = replica'); // the empty-tree checkpoint may be replaced
    await client.query('delete from ledger_checkpoints');
    await client.query('delete from ledger_head');
    await client.query('set local session_replication_role = origin');
    const keys: ExportKey[] = [];
    // Keys of the export's streams, unwrapped: a stream it holds partly in the clear keeps one key.
    const streamKeys = new Map<string, Buffer | null>();
    const entries: Entry[] = [];
    const sealedBodies = new Map<string, Buffer>();
    const tree: HashedNode[] = [];
    const flush = async () => {
      if (keys.length > 0) {
        await client.query(
          `insert into data_keys (subject, wrapped_key, master_key_id, erased_at)
           select s, w, m, case when w is null then now() end
           from unnest($1::text[], $2::bytea[], $3::text[]) as k(s, w, m)`,
          [
            keys.map((k) => k.subject),
            keys.map((k) => (k.wrappedKey === null ? null : Buffer.from(k.wrappedKey, 'base64'))),
            keys.map((k) => k.masterKeyId),
          ],
        );
      }
      if (entries.length > 0) {
        const clear = entries.filter(
          (e) => !sealedBodies.has(e.id) && !streamKeys.has(streamKeySubject(e.stream)),
        );
        const sealNew = (await cipher.sealerFor(clear.map((entry) => entry.stream)))?.seal;
        const seal = (entry: Entry) => {
          const stored = sealedBodies.get(entry.id);
          if (stored || !sealNew) return stored;
          const key = streamKeys.get(streamKeySubject(entry.stream));
          return key === undefined
            ? sealNew(entry)
            : key
              ? sealBody(key, entry, randomBytes(NONCE_SIZE))
              : undefined;
        };
        await client.query(ENTRY_ROWS_SQL, entryRowValues(entries, seal));
      }
      if (tree.length > 0) {
        await client.query(
          'insert into ledger_tree (level, idx, hash) select * from unnest($1::smallint[], $2::bigint[], $3::bytea[])',
          [tree.map((n) => n.level), tree.map((n) => n.index), tree.map((n) => Buffer.from(n.hash))],
        );
      }
      keys.length = 0;
      entries.length = 0;
      sealedBodies.clear();
      tree.length = 0;
    };
    await readChecked(
      file,
      {
        onKey: async (key, unwrapped) => {
          keys.push(key);
          streamKeys.set(key.subject, unwrapped);
          if (keys.length >= 2000) await flush();
        },
        onEntry: async (entry, completed, sealed) => {
          entries.push(entry);
          if (sealed) sealedBodies.set(entry.id, sealed);
          tree.push(...completed);
          if (entries.length >= 2000) await flush();
        },
        onCheckpoint: async ({ treeSize, note, rootHash: root }) => {
          await flush();
          await client.query(
            'insert into ledger_checkpoints (tree_size, root_hash, note) values ($1, $2, $3)',
            [treeSize, Buffer.from(root), note],
          );
        },
      },
      masterKeys,
    );
    await flush();
    await client.query(
      'insert into ledger_head (origin, verifier_key, tree_size, root_hash) values ($1, $2, $3, $4)',
      [header.origin, header.verifierKey, size, Buffer.from(rootHash)],
    );
    await client.query('commit');
    return { entries: size, origin: header.origin };
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
