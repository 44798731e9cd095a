// C2SP signed-note: a text, a blank line, and signature lines `— <key name> <base64(key id ‖ sig)>`.
// Checkpoints and stream heads are both signed notes; this is the part they share.
import { concatBytes, fromBase64, toBase64, utf8 } from './bytes.ts';
import { type SigningKey, sign, type VerifierKey, verifySignature } from './keys.ts';

export class NoteError extends Error {}

const SIGNATURE_PREFIX = '\u2014 ';
const MAX_SIGNATURES = 100;

/** The signed note: the text (ending in a newline), a blank line, and one signature line. */
export function signNote(text: string, key: SigningKey): string {
  const signature = sign(key, utf8(text));
  return `${text}\n${SIGNATURE_PREFIX}${key.name} ${toBase64(concatBytes(key.keyId, signature))}\n`;
}

/**
 * Opens a signed note: checks its shape and that at least one signature is a valid one by a
 * trusted key, and gives its text and that key. Signatures by unknown keys are ignored, as C2SP says.
 */
export function openNote(note: string, trusted: readonly VerifierKey[]): { text: string; key: VerifierKey } {
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
  return { text, key: verifiedBy };
}

/** A line that is a decimal integer without leading zeros, as a safe integer. */
export function parseDecimalLine(line: string, what: string): number {
  if (!/^(0|[1-9][0-9]*)$/.test(line) || !Number.isSafeInteger(Number(line))) {
    throw new NoteError(`${what} must be a decimal integer without leading zeros`);
  }
  return Number(line);
}

/** An origin line: non-empty, no surrounding spaces, no '+'. */
export function parseOriginLine(line: string): string {
  if (line === '' || line.trim() !== line || line.includes('+')) throw new NoteError('invalid origin line');
  return line;
}
