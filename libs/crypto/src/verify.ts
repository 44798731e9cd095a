// What a party checks offline (LEDGER.md, "Verifying a commitment"): every check named, with
// what failed, so a client can show exactly what holds and what does not.
import { fromBase64, toBase64 } from './bytes.ts';
import { type Checkpoint, openCheckpoint } from './checkpoint.ts';
import { bodyProblem, type EntryHeader, entryLeafHash, HEADER_FIELDS } from './entry.ts';
import { assertLedgerJson, type JsonObject } from './jcs.ts';
import { parseVerifierKey, sameKey, type VerifierKey } from './keys.ts';
import { verifyConsistency, verifyInclusion } from './proofs.ts';

export interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface VerifyResult {
  valid: boolean;
  checks: Check[];
}

export interface ServedEntry extends EntryHeader {
  data: JsonObject | null;
  salt: string | null;
  redacted?: boolean;
  leafHash: string;
}

export interface ReceiptBundle {
  origin: string;
  verifierKey: string;
  checkpoint: string;
  entries: (ServedEntry & { proof: { index: number; treeSize: number; hashes: string[] } })[];
  state?: unknown;
}

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
  result(): VerifyResult {
    return { valid: this.list.length > 0 && this.list.every((c) => c.ok), checks: this.list };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The key to trust: the one given (the served one must then be it), else the served one. */
function keyToTrust(
  checks: Checks,
  served: unknown,
  trusted: VerifierKey | undefined,
): VerifierKey | undefined {
  if (trusted && served === undefined) return trusted;
  let key: VerifierKey | undefined;
  checks.add('verifier key is well formed', () => {
    if (typeof served !== 'string') return 'missing verifierKey';
    key = parseVerifierKey(served);
    return true;
  });
  if (trusted) {
    checks.add('verifier key is the trusted key', () =>
      key && sameKey(key, trusted) ? true : 'another key signed this',
    );
    return trusted;
  }
  return key;
}

function openNote(
  checks: Checks,
  name: string,
  note: unknown,
  key: VerifierKey | undefined,
): Checkpoint | undefined {
  let checkpoint: Checkpoint | undefined;
  checks.add(name, () => {
    if (typeof note !== 'string') return 'missing checkpoint note';
    if (!key) return 'no key to check it with';
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

/** A receipt bundle (LEDGER.md): checkpoint, key, every event of one stream with its proof. */
export function verifyReceipt(bundle: unknown, trusted?: VerifierKey): VerifyResult {
  const checks = new Checks();
  if (
    !checks.add('receipt is a JSON object with entries', () =>
      isObject(bundle) && Array.isArray(bundle.entries) ? true : 'not a receipt',
    )
  ) {
    return checks.result();
  }
  const receipt = bundle as unknown as ReceiptBundle;
  const key = keyToTrust(checks, receipt.verifierKey, trusted);
  const checkpoint = openNote(checks, 'checkpoint is signed by the key', receipt.checkpoint, key);
  checks.add('checkpoint origin is the receipt origin', () =>
    checkpoint && checkpoint.origin === receipt.origin ? true : 'origins differ',
  );
  checks.add('entries are one stream, versions 1..k in order', () => {
    const streams = new Set(receipt.entries.map((e) => e.stream));
    if (streams.size > 1) return `entries of ${streams.size} streams`;
    const wrong = receipt.entries.findIndex((e, i) => e.version !== i + 1);
    return wrong < 0 ? true : `entry ${wrong} has version ${receipt.entries[wrong]?.version}`;
  });
  receipt.entries.forEach((entry, i) => {
    const label = `entry ${entry.index ?? `#${i}`} (version ${entry.version})`;
    const leaf = checkEntry(checks, entry, label);
    checks.add(`${label}: ledger is the receipt origin`, () =>
      entry.ledger === receipt.origin ? true : 'another ledger',
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
  trusted?: VerifierKey,
): VerifyResult {
  const checks = new Checks();
  const key = keyToTrust(checks, input.verifierKey, trusted);
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
  trusted?: VerifierKey,
): VerifyResult {
  const checks = new Checks();
  const key = keyToTrust(checks, input.verifierKey, trusted);
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
