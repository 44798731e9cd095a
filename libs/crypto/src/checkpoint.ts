// C2SP tlog-checkpoint inside a C2SP signed-note, signed with Ed25519.
import { fromBase64, toBase64 } from './bytes.ts';
import type { SigningKey, VerifierKey } from './keys.ts';
import { NoteError, openNote, parseDecimalLine, parseOriginLine, signNote } from './note.ts';
import { HASH_SIZE } from './sha256.ts';

export interface Checkpoint {
  origin: string;
  treeSize: number;
  rootHash: Uint8Array;
}

export function checkpointText({ origin, treeSize, rootHash }: Checkpoint): string {
  return `${origin}\n${treeSize}\n${toBase64(rootHash)}\n`;
}

/** The signed note: the checkpoint text, a blank line, and one signature line. */
export function signCheckpoint(checkpoint: Checkpoint, key: SigningKey): string {
  if (checkpoint.origin !== key.name) throw new NoteError('the key name must equal the origin');
  return signNote(checkpointText(checkpoint), key);
}

/** A root hash line: base64 of 32 bytes. */
export function parseRootHashLine(line: string): Uint8Array {
  let rootHash: Uint8Array;
  try {
    rootHash = fromBase64(line);
  } catch {
    throw new NoteError('root hash is not base64');
  }
  if (rootHash.length !== HASH_SIZE) throw new NoteError('root hash must be 32 bytes');
  return rootHash;
}

function parseCheckpointText(text: string): Checkpoint {
  const lines = text.split('\n');
  if (lines.length !== 4 || lines[3] !== '') throw new NoteError('a checkpoint is exactly three lines');
  const [origin, size, root] = lines as [string, string, string];
  return {
    origin: parseOriginLine(origin),
    treeSize: parseDecimalLine(size, 'tree size'),
    rootHash: parseRootHashLine(root),
  };
}

/**
 * Opens a signed note holding a checkpoint: checks its shape and that at least one signature
 * is a valid one by a trusted key. Signatures by unknown keys are ignored, as C2SP says.
 */
export function openCheckpoint(note: string, trusted: readonly VerifierKey[]): Checkpoint {
  const { text, key } = openNote(note, trusted);
  const checkpoint = parseCheckpointText(text);
  if (checkpoint.origin !== key.name) throw new NoteError('origin does not match the key name');
  return checkpoint;
}
