// An independent verifier of the Connect ledger, written from LEDGER.md alone: it imports
// nothing from this repository, only node:crypto, so a test can hold the service to the
// format rather than to its own code.
import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';

const sha256 = (...parts: Uint8Array[]): Buffer => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
};
const b64 = (text: string): Buffer => Buffer.from(text, 'base64');

// biome-ignore lint/suspicious/noExplicitAny: JSON as served, checked field by field below
type Json = any;

/** RFC 8785 for the JSON a ledger holds: objects, arrays, strings, integers, booleans, null. */
export function jcs(value: Json): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error('ledger numbers are integers within ±2^53');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item: Json) => jcs(item)).join(',')}]`;
  const keys = Object.keys(value).sort(); // UTF-16 code unit order, as RFC 8785 asks
  return `{${keys.map((key) => `${JSON.stringify(key)}:${jcs(value[key])}`).join(',')}}`;
}

const HEADER = [
  'ledger',
  'index',
  'id',
  'stream',
  'version',
  'type',
  'schema',
  'recordedAt',
  'actor',
  'meta',
  'dataHash',
];

export function leafHash(entry: Json): Buffer {
  const header = Object.fromEntries(HEADER.map((field) => [field, entry[field]]));
  return sha256(Buffer.from([0]), Buffer.from(jcs(header), 'utf8'));
}

export function dataHashHolds(entry: Json): boolean {
  if (entry.redacted || entry.data === null) return entry.data === null && entry.salt === null;
  return sha256(b64(entry.salt), Buffer.from(jcs(entry.data), 'utf8')).equals(b64(entry.dataHash));
}

const node = (left: Buffer, right: Buffer): Buffer => sha256(Buffer.from([1]), left, right);

/** RFC 9162 §2.1.3.2. */
export function inclusionHolds(
  index: number,
  treeSize: number,
  leaf: Buffer,
  hashes: string[],
  root: Buffer,
): boolean {
  if (index >= treeSize) return false;
  let fn = index;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of hashes.map(b64)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = node(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = node(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 §2.1.4.2. */
export function consistencyHolds(
  first: number,
  second: number,
  firstRoot: Buffer,
  secondRoot: Buffer,
  hashes: string[],
): boolean {
  if (first > second) return false;
  if (first === second) return hashes.length === 0 && firstRoot.equals(secondRoot);
  if (first === 0) return hashes.length === 0;
  let path = hashes.map(b64);
  if ((first & (first - 1)) === 0) path = [firstRoot, ...path];
  if (path.length === 0) return false;
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Buffer;
  let sr = path[0] as Buffer;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = node(c, fr);
      sr = node(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = node(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return fr.equals(firstRoot) && sr.equals(secondRoot) && sn === 0;
}

/** A verifier key `<name>+<key id hex>+<base64(0x01 ‖ public key)>`. */
export function parseVerifierKey(text: string) {
  // The name holds no '+'; the base64 key may.
  const first = text.indexOf('+');
  const second = text.indexOf('+', first + 1);
  const [name, id, key] = [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
  const raw = b64(key);
  if (raw.length !== 33 || raw[0] !== 1) throw new Error('not an Ed25519 verifier key');
  const publicKey = raw.subarray(1);
  const keyId = sha256(Buffer.from(name, 'utf8'), Buffer.from([0x0a, 0x01]), publicKey).subarray(0, 4);
  if (keyId.toString('hex') !== id) throw new Error('the key id does not match the key');
  const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), publicKey]);
  return { name, keyId, publicKey: createPublicKey({ key: der, format: 'der', type: 'spki' }) };
}

/** The text of a signed note, if a signature line of the trusted key (named as the note says) verifies; else null. */
function openSignedNote(note: string, trusted: ReturnType<typeof parseVerifierKey>): string | null {
  const split = note.indexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) return null;
  const text = note.slice(0, split + 1);
  for (const line of note.slice(split + 2, -1).split('\n')) {
    const match = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!match || match[1] !== trusted.name) continue;
    const signature = b64(match[2] as string);
    if (!signature.subarray(0, 4).equals(trusted.keyId)) continue;
    if (verifySignature(null, Buffer.from(text, 'utf8'), trusted.publicKey, signature.subarray(4)))
      return text;
  }
  return null;
}

const decimal = (line: string | undefined) =>
  line !== undefined && /^(0|[1-9][0-9]*)$/.test(line) ? Number(line) : null;

/** The checkpoint's origin, size and root, if a signature line of the trusted key verifies; else null. */
export function openCheckpoint(note: string, trusted: ReturnType<typeof parseVerifierKey>) {
  const text = openSignedNote(note, trusted);
  const lines = text?.split('\n') ?? [];
  if (lines.length !== 4 || lines[3] !== '') return null;
  const [origin = '', size, root = ''] = lines;
  const treeSize = decimal(size);
  if (treeSize === null || origin !== trusted.name) return null;
  return { origin, treeSize, root: b64(root) };
}

/** LEDGER.md "Stream head": seven lines, the first `connect-stream-head/v1`, signed like a checkpoint. */
export function openStreamHead(note: string, trusted: ReturnType<typeof parseVerifierKey>) {
  const text = openSignedNote(note, trusted);
  const lines = text?.split('\n') ?? [];
  if (lines.length !== 8 || lines[7] !== '' || lines[0] !== 'connect-stream-head/v1') return null;
  const [, origin = '', stream = '', version, index, size, root = ''] = lines;
  const numbers = [decimal(version), decimal(index), decimal(size)];
  if (numbers.includes(null) || origin !== trusted.name) return null;
  const [k, i, n] = numbers as number[];
  return { origin, stream, version: k as number, index: i as number, treeSize: n as number, root: b64(root) };
}

export interface ReceiptCheck {
  /** Every check made holds. */
  holds: boolean;
  /** The LEDGER.md steps that failed. */
  failed: string[];
  /** Checks this verifier did not make (the replay, without the domain's rules). */
  notMade: string[];
}

/**
 * Verifying a commitment as LEDGER.md says a party does, offline. The domain's rules are not in
 * this file: a caller that has them passes `replay`; without it the state check is not made.
 */
export function checkReceipt(
  bundle: Json,
  trustedKeyText: string | undefined,
  replay?: (entries: Json[]) => Json,
): ReceiptCheck {
  const failed: string[] = [];
  const notMade: string[] = [];
  const step = (name: string, ok: () => boolean) => {
    let holds = false;
    try {
      holds = ok();
    } catch {
      holds = false;
    }
    if (!holds) failed.push(name);
    return holds;
  };
  if (!trustedKeyText) return { holds: false, failed: ['1. no trusted key: nothing verified'], notMade };
  const trusted = parseVerifierKey(trustedKeyText);
  const checkpoint = openCheckpoint(bundle.checkpoint, trusted);
  step(
    '2. checkpoint signed by the trusted key',
    () => checkpoint !== null && bundle.origin === checkpoint.origin,
  );
  const entries: Json[] = bundle.entries;
  step('3. every entry: dataHash, leaf hash, inclusion in the checkpoint', () =>
    entries.every(
      (entry: Json) =>
        checkpoint !== null &&
        entry.ledger === checkpoint.origin &&
        dataHashHolds(entry) &&
        leafHash(entry).equals(b64(entry.leafHash)) &&
        entry.proof.treeSize === checkpoint.treeSize &&
        entry.proof.index === entry.index &&
        inclusionHolds(
          entry.index,
          checkpoint.treeSize,
          leafHash(entry),
          entry.proof.hashes,
          checkpoint.root,
        ),
    ),
  );
  const head = openStreamHead(bundle.streamHead, trusted);
  const last = entries.at(-1);
  step('4. stream head signed by the trusted key', () => head !== null);
  step(
    '4. stream head for the checkpoint’s size and root',
    () =>
      head !== null &&
      checkpoint !== null &&
      head.treeSize === checkpoint.treeSize &&
      head.root.equals(checkpoint.root),
  );
  step(
    '4. stream head names the stream, and its last entry’s version and index',
    () =>
      head !== null &&
      last !== undefined &&
      head.origin === bundle.origin &&
      head.stream === last.stream &&
      head.version === last.version &&
      head.index === last.index,
  );
  step('4. versions 1..k of one stream, none missing', () =>
    entries.every((entry: Json, i: number) => entry.version === i + 1 && entry.stream === last?.stream),
  );
  if (replay)
    step(
      '5. state is what the entries replay to',
      () => jcs(JSON.parse(JSON.stringify(replay(entries)))) === jcs(bundle.state),
    );
  else notMade.push('5. state is what the entries replay to (no domain rules here)');
  return { holds: failed.length === 0, failed, notMade };
}

/** Whether a receipt holds as far as this verifier can tell (see checkReceipt). */
export function receiptHolds(
  bundle: Json,
  trustedKeyText: string,
  replay?: (entries: Json[]) => Json,
): boolean {
  return checkReceipt(bundle, trustedKeyText, replay).holds;
}
