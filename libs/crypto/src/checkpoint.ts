// C2SP tlog-checkpoint inside a C2SP signed-note, signed with Ed25519.
import { concatBytes, fromBase64, toBase64, utf8 } from './bytes.ts';
import { type SigningKey, sign, type VerifierKey, verifySignature } from './keys.ts';
import { HASH_SIZE } from './sha256.ts';

export interface Checkpoint {
  origin: string;
  treeSize: number;
  rootHash: Uint8Array;
}

export class NoteError extends Error {}

const SIGNATURE_PREFIX = '\u2014 ';
const MAX_SIGNATURES = 100;

export function checkpointText({ origin, treeSize, rootHash }: Checkpoint): string {
  return `${origin}\n${treeSize}\n${toBase64(rootHash)}\n`;
}

/** The signed note: the checkpoint text, a blank line, and one signature line. */
export function signCheckpoint(checkpoint: Checkpoint, key: SigningKey): string {
  if (checkpoint.origin !== key.name) throw new NoteError('the key name must equal the origin');
  const text = checkpointText(checkpoint);
  const signature = sign(key, utf8(text));
  return `${text}\n${SIGNATURE_PREFIX}${key.name} ${toBase64(concatBytes(key.keyId, signature))}\n`;
}

function parseCheckpointText(text: string): Checkpoint {
  const lines = text.split('\n');
  if (lines.length !== 4 || lines[3] !== '') throw new NoteError('a checkpoint is exactly three lines');
  const [origin, size, root] = lines as [string, string, string];
  if (origin === '' || origin.trim() !== origin || origin.includes('+'))
    throw new NoteError('invalid origin line');
  if (!/^(0|[1-9][0-9]*)$/.test(size) || !Number.isSafeInteger(Number(size))) {
    throw new NoteError('tree size must be a decimal integer without leading zeros');
  }
  let rootHash: Uint8Array;
  try {
    rootHash = fromBase64(root);
  } catch {
    throw new NoteError('root hash is not base64');
  }
  if (rootHash.length !== HASH_SIZE) throw new NoteError('root hash must be 32 bytes');
  return { origin, treeSize: Number(size), rootHash };
}

/**
 * Opens a signed note holding a checkpoint: checks its shape and that at least one signature
 * is a valid one by a trusted key. Signatures by unknown keys are ignored, as C2SP says.
 */
export function openCheckpoint(note: string, trusted: readonly VerifierKey[]): Checkpoint {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(note)) throw new NoteError('note holds control characters');
  if (!note.endsWith('\n')) throw new NoteError('note must end with a newline');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('no blank line between text and signatures');
  const text = note.slice(0, split + 1);
  const signatureLines = note.slice(split + 2, -1).split('\n');
  if (signatureLines.length > MAX_SIGNATURES) throw new NoteError('too many signatures');
  const message = utf8(text);
  let verifiedBy: VerifierKey | undefined;
  for (const line of signatureLines) {
    const match = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!match) throw new NoteError('malformed signature line');
    const [, name, encoded] = match as unknown as [string, string, string];
    let blob: Uint8Array;
    try {
      blob = fromBase64(encoded);
    } catch {
      throw new NoteError('signature is not base64');
    }
    if (blob.length < 5) throw new NoteError('signature too short');
    const id = blob.subarray(0, 4);
    const key = trusted.find((k) => k.name === name && k.keyId.every((byte, i) => byte === id[i]));
    if (!key) continue;
    if (!verifySignature(key, message, blob.subarray(4))) throw new NoteError(`invalid signature by ${name}`);
    verifiedBy = key;
  }
  if (!verifiedBy) throw new NoteError('no signature by a trusted key');
  const checkpoint = parseCheckpointText(text);
  if (checkpoint.origin !== verifiedBy.name) throw new NoteError('origin does not match the key name');
  return checkpoint;
}
