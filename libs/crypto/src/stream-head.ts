// A stream head (LEDGER.md "Stream head"): a signed note by the ledger's key saying which entry
// was a stream's latest at a tree size, so a receipt with entries cut off its end is caught.
import { toBase64 } from './bytes.ts';
import { parseRootHashLine } from './checkpoint.ts';
import type { SigningKey, VerifierKey } from './keys.ts';
import { NoteError, openNote, parseDecimalLine, parseOriginLine, signNote } from './note.ts';

export const STREAM_HEAD_HEADER = 'connect-stream-head/v1';

export interface StreamHead {
  origin: string;
  stream: string;
  /** Version k of the stream's latest entry in the tree (1-based). */
  version: number;
  /** Ledger index of that entry. */
  index: number;
  treeSize: number;
  rootHash: Uint8Array;
}

export function streamHeadText(head: StreamHead): string {
  const { origin, stream, version, index, treeSize, rootHash } = head;
  return `${STREAM_HEAD_HEADER}\n${origin}\n${stream}\n${version}\n${index}\n${treeSize}\n${toBase64(rootHash)}\n`;
}

function checkHead(head: StreamHead): StreamHead {
  if (head.stream === '' || head.stream.includes('\n')) throw new NoteError('invalid stream line');
  if (head.version < 1) throw new NoteError('version must be at least 1');
  if (head.index >= head.treeSize) throw new NoteError('the entry must be in the tree');
  if (head.index < head.version - 1)
    throw new NoteError('an entry of version k has an index of at least k-1');
  return head;
}

/** The signed note: the stream head text, a blank line, and one signature line. */
export function signStreamHead(head: StreamHead, key: SigningKey): string {
  if (head.origin !== key.name) throw new NoteError('the key name must equal the origin');
  return signNote(streamHeadText(checkHead(head)), key);
}

function parseStreamHeadText(text: string): StreamHead {
  const lines = text.split('\n');
  if (lines.length !== 8 || lines[7] !== '') throw new NoteError('a stream head is exactly seven lines');
  const [header, origin, stream, version, index, size, root] = lines as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (header !== STREAM_HEAD_HEADER) throw new NoteError(`the first line must be ${STREAM_HEAD_HEADER}`);
  return checkHead({
    origin: parseOriginLine(origin),
    stream,
    version: parseDecimalLine(version, 'version'),
    index: parseDecimalLine(index, 'index'),
    treeSize: parseDecimalLine(size, 'tree size'),
    rootHash: parseRootHashLine(root),
  });
}

/** Opens a signed stream head: its shape, and a valid signature by a trusted key named as its origin. */
export function openStreamHead(note: string, trusted: readonly VerifierKey[]): StreamHead {
  const { text, key } = openNote(note, trusted);
  const head = parseStreamHeadText(text);
  if (head.origin !== key.name) throw new NoteError('origin does not match the key name');
  return head;
}
