// Uploaded files, stored content-addressed under the data directory: the ledger records each
// file's SHA-256, and the path is that hash, so a download is the bytes the ledger describes.
// An upload stays a draft (.upload-*) until its DocumentAttached is appended, so a refused
// upload never touches a file another document uses.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export class DocumentTooLargeError extends Error {}

/** The upload stream ended before the file did (client gone, or the multipart parser gave up). */
export class UploadCutOffError extends Error {}

export interface Draft {
  path: string;
  sha256: string;
  size: number;
}

const DRAFT_PREFIX = '.upload-';

export function documentPath(dir: string, sha256: string): string {
  return path.join(dir, sha256.slice(0, 2), sha256);
}

/** Streams an upload to a draft file while hashing it; refuses past `maxBytes`; leaves nothing on failure. */
export async function writeDraft(dir: string, file: Readable, maxBytes: number): Promise<Draft> {
  const tooLarge = () => new DocumentTooLargeError(`documents are limited to ${maxBytes} bytes`);
  // pipeline() never settles on a stream destroyed before it starts.
  if (file.destroyed) throw new UploadCutOffError('the upload ended before the file did');
  await mkdir(dir, { recursive: true });
  const draft = path.join(dir, `${DRAFT_PREFIX}${randomBytes(8).toString('hex')}`);
  const hash = createHash('sha256');
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > maxBytes) return done(tooLarge());
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(file, meter, createWriteStream(draft, { mode: 0o600 }));
    // @fastify/multipart truncates at its own limit instead of failing the stream.
    if ((file as Readable & { truncated?: boolean }).truncated) throw tooLarge();
    return { path: draft, sha256: hash.digest('hex'), size };
  } catch (error) {
    file.destroy();
    await rm(draft, { force: true });
    if ((error as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      throw new UploadCutOffError('the upload ended before the file did');
    }
    throw error;
  }
}

/** Moves a draft to its content address; the same bytes may already be there, which is fine. */
export async function commitDraft(dir: string, draft: Draft): Promise<void> {
  const target = documentPath(dir, draft.sha256);
  await mkdir(path.dirname(target), { recursive: true });
  await rename(draft.path, target);
}

export async function discardDraft(draft: Draft): Promise<void> {
  await rm(draft.path, { force: true });
}

// A live upload writes its draft continuously and appends within seconds of its last byte, so
// a draft untouched this long is an orphan, even with other processes sharing the directory.
const DRAFT_GRACE_MS = 5 * 60_000;

/** Removes the drafts a crash left behind: those untouched for `olderThanMs`. */
export async function removeDrafts(dir: string, olderThanMs = DRAFT_GRACE_MS): Promise<number> {
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  let removed = 0;
  for (const name of names.filter((n) => n.startsWith(DRAFT_PREFIX))) {
    const file = path.join(dir, name);
    const info = await stat(file).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs >= olderThanMs) {
      await rm(file, { force: true });
      removed++;
    }
  }
  return removed;
}

/** Removes orphaned drafts now, then every few minutes until closed. */
export async function startDraftSweeps(
  dir: string,
  log: { warn(details: object, message: string): void },
): Promise<{ close(): void }> {
  const sweep = () =>
    removeDrafts(dir).catch((error: unknown) => log.warn({ err: error }, 'removing upload drafts failed'));
  await sweep();
  const timer = setInterval(sweep, DRAFT_GRACE_MS).unref();
  return { close: () => clearInterval(timer) };
}

export async function openDocument(dir: string, sha256: string): Promise<{ stream: Readable; size: number }> {
  const file = documentPath(dir, sha256);
  const { size } = await stat(file);
  return { stream: createReadStream(file), size };
}

// Subtypes (or +suffixes) a browser would run or render as a page: markup and scripts.
const ACTIVE = new Set(
  'html xhtml xml svg xsl xslt mathml javascript x-javascript ecmascript x-ecmascript jscript x-mixed-replace x-component'.split(
    ' ',
  ),
);
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/([a-z0-9][a-z0-9!#$&^_.+-]*)$/;

/** The type to serve a stored document as: its declared type unless a browser might execute it. */
export function servedMediaType(declared: string): string {
  const essence = (declared.split(';')[0] ?? '').trim().toLowerCase();
  const subtype = MEDIA_TYPE.exec(essence)?.[1];
  if (!subtype || subtype.split('+').some((part) => ACTIVE.has(part))) return 'application/octet-stream';
  return essence;
}
