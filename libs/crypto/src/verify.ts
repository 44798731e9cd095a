// What a party checks offline (LEDGER.md, "Verifying a commitment"): every check named, with
// what failed, so a client can show exactly what holds and what does not.
import { equalBytes, fromBase64, toBase64 } from './bytes.ts';
import { type Checkpoint, openCheckpoint } from './checkpoint.ts';
import { bodyProblem, type EntryHeader, entryLeafHash, HEADER_FIELDS } from './entry.ts';
import { assertLedgerJson, type JsonObject, type JsonValue, jcsText } from './jcs.ts';
import { parseVerifierKey, sameKey, type VerifierKey } from './keys.ts';
import { verifyConsistency, verifyInclusion } from './proofs.ts';
import { openStreamHead, type StreamHead } from './stream-head.ts';

export interface Check {
  name: string;
  ok: boolean;
  detail?: string;
  /** Set on a check this verifier could not make (it then counts neither for nor against). */
  notMade?: true;
}

export interface VerifyResult {
  /** At least one check was made, and every check made holds. */
  valid: boolean;
  checks: Check[];
}

export interface ServedEntry extends EntryHeader {
  data: JsonObject | null;
  salt: string | null;
  redacted?: boolean;
  leafHash: string;
}

export type ProvenEntry = ServedEntry & { proof: { index: number; treeSize: number; hashes: string[] } };

export interface ReceiptBundle {
  origin: string;
  verifierKey: string;
  checkpoint: string;
  /** The signed stream head: the stream's latest version and index at the checkpoint's tree. */
  streamHead: string;
  entries: ProvenEntry[];
  /** The entries of the parties' profiles, proven to the same checkpoint, for their names. */
  profiles?: ProvenEntry[];
  state?: unknown;
}

export interface VerifyReceiptOptions {
  /** The domain's rules: what the entries replay to. Without it, that check is reported as not made. */
  replay?: (entries: ProvenEntry[]) => unknown;
}

export const NO_TRUSTED_KEY =
  'no trusted key: nothing was verified. Give the ledger’s verifier key you trust';
export const STATE_CHECK = 'state is what the entries replay to';

class Checks {
  readonly list: Check[] = [];
  add(name: string, run: () => true | string): boolean {
    let ok = false;
    let detail: string | undefined;
    try {
      const outcome = run();
      ok = outcome === true;
      if (outcome !== true) detail = outcome;
    } catch (error) {
      detail = (error as Error).message;
    }
    this.list.push(detail === undefined ? { name, ok } : { name, ok, detail });
    return ok;
  }
  notMade(name: string, detail: string): void {
    this.list.push({ name, ok: false, detail, notMade: true });
  }
  result(): VerifyResult {
    const made = this.list.filter((c) => !c.notMade);
    return { valid: made.length > 0 && made.every((c) => c.ok), checks: this.list };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The key to check signatures with: the trusted one, never the one a bundle brings (anyone can
 * sign a forgery with a key of their own). A served key must be the trusted one.
 */
function keyToTrust(
  checks: Checks,
  served: unknown,
  trusted: VerifierKey | undefined,
): VerifierKey | undefined {
  if (!trusted) {
    checks.add('a trusted verifier key is given', () => NO_TRUSTED_KEY);
    return undefined;
  }
  if (served === undefined) return trusted;
  let key: VerifierKey | undefined;
  checks.add('verifier key is well formed', () => {
    if (typeof served !== 'string') return 'verifierKey is not a string';
    key = parseVerifierKey(served);
    return true;
  });
  checks.add('verifier key is the trusted key', () =>
    key && sameKey(key, trusted) ? true : 'another key signed this',
  );
  return trusted;
}

function openNote(checks: Checks, name: string, note: unknown, key: VerifierKey): Checkpoint | undefined {
  let checkpoint: Checkpoint | undefined;
  checks.add(name, () => {
    if (typeof note !== 'string') return 'missing checkpoint note';
    checkpoint = openCheckpoint(note, [key]);
    return true;
  });
  return checkpoint;
}

/** One entry: its dataHash from salt and data (unless redacted), its leaf hash from its header. */
function checkEntry(checks: Checks, entry: ServedEntry, label: string): Uint8Array | undefined {
  let leaf: Uint8Array | undefined;
  checks.add(`${label}: header is complete`, () => {
    const missing = HEADER_FIELDS.filter((field) => !(field in entry));
    return missing.length === 0 ? true : `missing ${missing.join(', ')}`;
  });
  const name =
    entry.data === null
      ? 'body redacted (its dataHash is taken as recorded)'
      : 'dataHash matches salt and data';
  checks.add(`${label}: ${name}`, () => {
    if (entry.data !== null) assertLedgerJson(entry.data);
    return bodyProblem(entry) ?? true;
  });
  checks.add(`${label}: leaf hash matches the header`, () => {
    leaf = entryLeafHash(entry);
    return toBase64(leaf) === entry.leafHash ? true : `recomputed ${toBase64(leaf)}`;
  });
  return leaf;
}

/** Entries with their proofs: each one's body, leaf, ledger and inclusion in the checkpoint. */
function checkProvenEntries(
  checks: Checks,
  entries: unknown[],
  origin: unknown,
  checkpoint: Checkpoint | undefined,
  labelOf: (entry: ProvenEntry, i: number) => string,
): void {
  entries.forEach((item, i) => {
    if (!isObject(item)) {
      checks.add(`entry #${i}`, () => 'not an entry');
      return;
    }
    const entry = item as unknown as ProvenEntry;
    const label = labelOf(entry, i);
    const leaf = checkEntry(checks, entry, label);
    checks.add(`${label}: ledger is the receipt origin`, () =>
      entry.ledger === origin ? true : 'another ledger',
    );
    checks.add(`${label}: included in the checkpoint`, () => {
      if (!checkpoint || !leaf) return 'no checkpoint or leaf to check against';
      const { proof } = entry;
      if (!isObject(proof) || proof.index !== entry.index) return 'proof is of another index';
      if (proof.treeSize !== checkpoint.treeSize)
        return `proof is for size ${proof.treeSize}, checkpoint is ${checkpoint.treeSize}`;
      const ok = verifyInclusion(
        { index: proof.index, treeSize: proof.treeSize, hashes: proof.hashes.map(fromBase64) },
        leaf,
        checkpoint.rootHash,
      );
      return ok ? true : 'inclusion proof does not lead to the checkpoint root';
    });
  });
}

/** LEDGER.md step 4: the signed stream head closes the list of entries at the checkpoint's tree. */
function checkStreamHead(
  checks: Checks,
  receipt: ReceiptBundle,
  key: VerifierKey,
  checkpoint: Checkpoint | undefined,
): void {
  let head: StreamHead | undefined;
  const signed = checks.add('stream head is signed by the key', () => {
    if (typeof receipt.streamHead !== 'string') return 'the receipt has no stream head';
    head = openStreamHead(receipt.streamHead, [key]);
    return true;
  });
  if (!signed || !head) return;
  const { treeSize, rootHash, stream, version, index, origin } = head;
  checks.add('stream head is for the checkpoint’s tree size and root', () => {
    if (!checkpoint) return 'no checkpoint to compare with';
    if (treeSize !== checkpoint.treeSize)
      return `stream head is for size ${treeSize}, checkpoint is ${checkpoint.treeSize}`;
    return equalBytes(rootHash, checkpoint.rootHash) ? true : 'stream head has another root';
  });
  const last = receipt.entries.at(-1) as ProvenEntry | undefined;
  checks.add('stream head names the receipt’s stream', () => {
    if (origin !== receipt.origin) return `stream head is of ledger ${origin}`;
    if (!isObject(last)) return 'the receipt holds no entries';
    return stream === last.stream ? true : `stream head is of stream ${stream}`;
  });
  checks.add('stream head’s latest entry is the receipt’s last (version and index)', () => {
    if (!isObject(last)) return 'the receipt holds no entries';
    if (last.version !== version || last.index !== index)
      return `the stream's latest is version ${version} at index ${index}; the receipt ends at version ${last.version} (index ${last.index})`;
    return true;
  });
}

const canonical = (value: unknown) => jcsText(JSON.parse(JSON.stringify(value)) as JsonValue);

/** LEDGER.md step 5: the bundle's state is what the entries replay to, equal as JCS. */
function checkState(checks: Checks, receipt: ReceiptBundle, options: VerifyReceiptOptions): void {
  const { replay } = options;
  if (!replay) {
    checks.notMade(STATE_CHECK, 'not made: this verifier has no domain rules to replay the entries with');
    return;
  }
  checks.add(STATE_CHECK, () => {
    if (receipt.state === undefined) return 'the receipt carries no state';
    const replayed = replay(receipt.entries);
    if (canonical(replayed) === canonical(receipt.state)) return true;
    if (!isObject(replayed) || !isObject(receipt.state)) return 'the state differs from the replay';
    const fields = [...new Set([...Object.keys(replayed), ...Object.keys(receipt.state)])].filter(
      (field) =>
        !(field in replayed) ||
        !(field in (receipt.state as object)) ||
        canonical(replayed[field] ?? null) !==
          canonical((receipt.state as Record<string, unknown>)[field] ?? null),
    );
    return `the state differs from the replay in ${fields.sort().join(', ')}`;
  });
}

/**
 * A receipt bundle (LEDGER.md): checkpoint, stream head, every event of one stream with its proof,
 * and the state they replay to, all against a key the caller trusts. Without one, nothing is
 * verified. The replay check needs the domain's rules, given as options.replay.
 */
export function verifyReceipt(
  bundle: unknown,
  trusted: VerifierKey | undefined,
  options: VerifyReceiptOptions = {},
): VerifyResult {
  const checks = new Checks();
  const key = keyToTrust(checks, isObject(bundle) ? bundle.verifierKey : undefined, trusted);
  if (!key) return checks.result();
  if (
    !checks.add('receipt is a JSON object with entries', () =>
      isObject(bundle) && Array.isArray(bundle.entries) ? true : 'not a receipt',
    )
  ) {
    return checks.result();
  }
  const receipt = bundle as unknown as ReceiptBundle;
  const checkpoint = openNote(checks, 'checkpoint is signed by the key', receipt.checkpoint, key);
  checks.add('checkpoint origin is the receipt origin', () =>
    checkpoint && checkpoint.origin === receipt.origin ? true : 'origins differ',
  );
  checks.add('entries are one stream, versions 1..k in order', () => {
    const streams = new Set(receipt.entries.map((e) => (isObject(e) ? e.stream : undefined)));
    if (streams.size > 1) return `entries of ${streams.size} streams`;
    const wrong = receipt.entries.findIndex((e, i) => !isObject(e) || e.version !== i + 1);
    return wrong < 0 ? true : `entry ${wrong} has version ${receipt.entries[wrong]?.version}`;
  });
  checkProvenEntries(
    checks,
    receipt.entries,
    receipt.origin,
    checkpoint,
    (entry, i) => `entry ${entry.index ?? `#${i}`} (version ${entry.version})`,
  );
  if (receipt.profiles !== undefined) {
    checks.add('profiles are a list', () => (Array.isArray(receipt.profiles) ? true : 'not a list'));
    if (Array.isArray(receipt.profiles)) {
      checkProvenEntries(
        checks,
        receipt.profiles,
        receipt.origin,
        checkpoint,
        (entry, i) => `profile entry ${entry.index ?? `#${i}`} (${entry.stream})`,
      );
    }
  }
  checkStreamHead(checks, receipt, key, checkpoint);
  checkState(checks, receipt, options);
  return checks.result();
}

/** One entry with its inclusion proof and a checkpoint. */
export function verifyEntryProof(
  input: {
    entry: ServedEntry;
    proof: { index: number; treeSize: number; hashes: string[] };
    checkpoint: string;
    verifierKey?: string;
  },
  trusted: VerifierKey | undefined,
): VerifyResult {
  const checks = new Checks();
  const key = keyToTrust(checks, input.verifierKey, trusted);
  if (!key) return checks.result();
  const checkpoint = openNote(checks, 'checkpoint is signed by the key', input.checkpoint, key);
  const leaf = checkEntry(checks, input.entry, `entry ${input.entry?.index}`);
  checks.add('entry is included in the checkpoint', () => {
    if (!checkpoint || !leaf) return 'no checkpoint or leaf to check against';
    const { proof } = input;
    if (proof.index !== input.entry.index) return 'proof is of another index';
    if (proof.treeSize !== checkpoint.treeSize)
      return `proof is for size ${proof.treeSize}, checkpoint is ${checkpoint.treeSize}`;
    return verifyInclusion({ ...proof, hashes: proof.hashes.map(fromBase64) }, leaf, checkpoint.rootHash)
      ? true
      : 'inclusion proof does not lead to the checkpoint root';
  });
  return checks.result();
}

/** Two checkpoints and a consistency proof: the newer tree extends the older one. */
export function verifyCheckpointConsistency(
  input: {
    from: string;
    to: string;
    proof: { from: number; to: number; hashes: string[] };
    verifierKey?: string;
  },
  trusted: VerifierKey | undefined,
): VerifyResult {
  const checks = new Checks();
  const key = keyToTrust(checks, input.verifierKey, trusted);
  if (!key) return checks.result();
  const older = openNote(checks, 'older checkpoint is signed by the key', input.from, key);
  const newer = openNote(checks, 'newer checkpoint is signed by the key', input.to, key);
  checks.add('newer tree extends the older one', () => {
    if (!older || !newer) return 'no checkpoints to compare';
    const { proof } = input;
    if (proof.from !== older.treeSize || proof.to !== newer.treeSize)
      return 'proof sizes are not the checkpoints’ sizes';
    if (older.origin !== newer.origin) return 'checkpoints of two ledgers';
    return verifyConsistency(
      { ...proof, hashes: proof.hashes.map(fromBase64) },
      older.rootHash,
      newer.rootHash,
    )
      ? true
      : 'the ledger was forked or rewritten between these checkpoints';
  });
  return checks.result();
}
