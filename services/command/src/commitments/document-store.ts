// Uploaded files, stored content-addressed under the data directory: the ledger records each
// file's SHA-256 (of the plaintext), and the path is that hash, so a download is the bytes the
// ledger describes. An upload stays a draft (.upload-*) until its DocumentAttached is appended,
// so a refused upload never touches a file another document uses.
//
// At rest a document is sealed (CONNECT_ENCRYPTION=on): a header, then segments of 64 KiB of
// plaintext, each sealed on its own under the data key of `document:<sha256>` with the place
// `documents:<sha256>:<index>:<last|more>`, so a download streams and serves only opened segments,
// and a truncated, reordered or moved file does not open. A file without the header is plaintext
// (written with encryption off, or before it existed), served as it is but cut off at its end
// unless it hashes to its name.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline as chain, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KEY_SIZE, NONCE_SIZE, open as openSealed, SealBroken, seal } from '@connect/crypto/envelope';
import type { KeyRing } from '@connect/db';

export class DocumentTooLargeError extends Error {}

/** The upload stream ended before the file did (client gone, or the multipart parser gave up). */
export class UploadCutOffError extends Error {}

/** A stored document that does not open: altered, truncated, moved, or its key gone. */
export class DocumentUnreadableError extends Error {
  constructor(sha256: string, why: string) {
    super(`the stored document ${sha256} cannot be read: ${why}`);
    this.name = 'DocumentUnreadableError';
  }
}

export interface Draft {
  path: string;
  sha256: string;
  size: number;
}

/** How documents are stored: the data keys, and whether new files are sealed (CONNECT_ENCRYPTION). */
export interface DocumentSealing {
  keys: KeyRing;
  seal: boolean;
}

const DRAFT_PREFIX = '.upload-';
/** The first bytes of a sealed file: a magic (never the start of a text file) and the format's version. */
const MAGIC = Buffer.from('\x89CONNECT-DOC\r\n', 'latin1');
const HEADER = Buffer.concat([MAGIC, Buffer.of(1)]);
const SEGMENT = 64 * 1024;
/** What sealing adds to a segment (version byte, nonce, tag). */
const OVERHEAD = seal(Buffer.alloc(KEY_SIZE), Buffer.alloc(0), '', Buffer.alloc(NONCE_SIZE)).length;
const SEALED_SEGMENT = SEGMENT + OVERHEAD;

type Place = (index: number, last: boolean) => string;
const documentPlace =
  (sha256: string): Place =>
  (index, last) =>
    `documents:${sha256}:${index}:${last ? 'last' : 'more'}`;
const documentSubject = (sha256: string) => `document:${sha256}`;

export function documentPath(dir: string, sha256: string): string {
  return path.join(dir, sha256.slice(0, 2), sha256);
}

/** Seals a byte stream: the header, then each 64 KiB segment (the last may be shorter, even empty). */
function sealer(key: Uint8Array, place: Place): Transform {
  let pending: Buffer = Buffer.alloc(0);
  let index = 0;
  let started = false;
  const start = (stream: Transform) => {
    if (!started) stream.push(HEADER);
    started = true;
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      start(this);
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // A full segment is sealed once a byte follows it: only then is it known not to be the last.
      while (pending.length > SEGMENT) {
        this.push(seal(key, pending.subarray(0, SEGMENT), place(index++, false), randomBytes(NONCE_SIZE)));
        pending = pending.subarray(SEGMENT);
      }
      done();
    },
    flush(done) {
      start(this);
      this.push(seal(key, pending, place(index, true), randomBytes(NONCE_SIZE)));
      done();
    },
  });
}

/** Where a sealed file's segments are: how many, and the size of the last (the others are full). */
function segmentLayout(size: number): { count: number; lastSize: number } | undefined {
  const body = size - HEADER.length;
  const count = Math.ceil(body / SEALED_SEGMENT);
  const lastSize = body - (count - 1) * SEALED_SEGMENT;
  return count < 1 || lastSize < OVERHEAD ? undefined : { count, lastSize };
}

/** Opens segment `index` of a sealed file of `size` bytes; `unreadable` when it does not. */
async function openSegment(
  handle: FileHandle,
  size: number,
  index: number,
  key: Uint8Array,
  place: Place,
  unreadable: (why: string) => Error,
): Promise<Buffer> {
  const layout = segmentLayout(size);
  if (!layout) throw unreadable('it is truncated');
  const last = index === layout.count - 1;
  const sealed = Buffer.alloc(last ? layout.lastSize : SEALED_SEGMENT);
  const { bytesRead } = await handle.read(sealed, 0, sealed.length, HEADER.length + index * SEALED_SEGMENT);
  if (bytesRead !== sealed.length) throw unreadable('it is truncated');
  try {
    return openSealed(key, sealed, place(index, last));
  } catch (error) {
    if (error instanceof SealBroken)
      throw unreadable(`segment ${index} does not open (altered, truncated or moved)`);
    throw error;
  }
}

/** The plaintext of a sealed file's segments, each opened before it is yielded; closes the handle. */
async function* openedSegments(
  handle: FileHandle,
  size: number,
  key: Uint8Array,
  place: Place,
  unreadable: (why: string) => Error,
): AsyncGenerator<Buffer> {
  try {
    const count = segmentLayout(size)?.count ?? 1;
    for (let index = 0; index < count; index++)
      yield await openSegment(handle, size, index, key, place, unreadable);
  } finally {
    await handle.close();
  }
}

/** A stream of the segments, the first of which already opened (so a bad file fails before any byte is sent). */
async function plaintextStream(segments: AsyncGenerator<Buffer>): Promise<Readable> {
  const first = await segments.next();
  // Only the last segment can be empty: nothing to push before the end then.
  let head: Buffer | undefined = first.done || first.value.length === 0 ? undefined : first.value;
  return new Readable({
    async read() {
      try {
        if (head) {
          this.push(head);
          head = undefined;
          return;
        }
        const next = await segments.next();
        this.push(next.done ? null : next.value);
      } catch (error) {
        this.destroy(error as Error);
      }
    },
    destroy(error, callback) {
      segments.return(undefined).then(
        () => callback(error),
        (closing: Error) => callback(error ?? closing),
      );
    },
  });
}

/**
 * Passes a plaintext file through and fails at its end unless its SHA-256 is `sha256`: it has no
 * tags to check on the way, but an altered one is cut off instead of ending as if complete.
 */
function hashChecked(sha256: string): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const actual = hash.digest('hex');
      done(
        actual === sha256
          ? null
          : new DocumentUnreadableError(sha256, `its plaintext bytes hash to ${actual}`),
      );
    },
  });
}

async function documentKey(keys: KeyRing, sha256: string, create: boolean): Promise<Buffer> {
  const subject = documentSubject(sha256);
  const key = (await keys.keys([subject], { create })).get(subject);
  if (key === null) throw new DocumentUnreadableError(sha256, 'its key is erased');
  if (!key) throw new DocumentUnreadableError(sha256, 'it is sealed but it has no key');
  return key;
}

/**
 * A stored document's plaintext and its size. A sealed file's first and last segments are opened
 * before this returns (a file altered there, truncated or moved throws DocumentUnreadableError);
 * a segment between that does not open errors the stream there, so no byte of it is ever served.
 */
export async function openDocumentFile(
  file: string,
  sha256: string,
  keys: KeyRing,
): Promise<{ stream: Readable; size: number }> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const header = Buffer.alloc(HEADER.length);
    const { bytesRead } = await handle.read(header, 0, header.length, 0);
    if (bytesRead < MAGIC.length || !header.subarray(0, MAGIC.length).equals(MAGIC))
      return { stream: chain(handle.createReadStream(), hashChecked(sha256), () => undefined), size };
    if (!header.equals(HEADER)) throw new DocumentUnreadableError(sha256, 'its format version is not known');
    const key = await documentKey(keys, sha256, false);
    const place = documentPlace(sha256);
    const unreadable = (why: string) => new DocumentUnreadableError(sha256, why);
    const layout = segmentLayout(size);
    if (!layout) throw unreadable('it is truncated');
    // The last segment too is opened before any byte is sent, so a truncated file is refused whole.
    if (layout.count > 1) await openSegment(handle, size, layout.count - 1, key, place, unreadable);
    const segments = openedSegments(handle, size, key, place, unreadable);
    return { stream: await plaintextStream(segments), size: size - HEADER.length - layout.count * OVERHEAD };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

export async function openDocument(
  dir: string,
  sha256: string,
  keys: KeyRing,
): Promise<{ stream: Readable; size: number }> {
  return openDocumentFile(documentPath(dir, sha256), sha256, keys);
}

/** The SHA-256 and size of a stored file's plaintext (throws DocumentUnreadableError if it does not open). */
export async function documentDigest(
  file: string,
  sha256: string,
  keys: KeyRing,
): Promise<{ sha256: string; size: number }> {
  const { stream } = await openDocumentFile(file, sha256, keys);
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    hash.update(chunk);
  }
  return { sha256: hash.digest('hex'), size };
}

const draftFile = (dir: string) => path.join(dir, `${DRAFT_PREFIX}${randomBytes(8).toString('hex')}`);

/**
 * Streams an upload to a draft file while hashing it; refuses past `maxBytes`; leaves nothing on
 * failure. Sealed, the draft is ready to take its place: the document's key hangs on its SHA-256,
 * known only at the end, so the upload is first sealed under a random key that lives only in
 * this call (the plaintext never touches the disk, and a crash leaves an unreadable draft the
 * sweep removes), then opened and sealed again under the document's key into a second draft.
 */
export async function writeDraft(
  dir: string,
  file: Readable,
  maxBytes: number,
  sealing: DocumentSealing,
): Promise<Draft> {
  const tooLarge = () => new DocumentTooLargeError(`documents are limited to ${maxBytes} bytes`);
  // pipeline() never settles on a stream destroyed before it starts.
  if (file.destroyed) throw new UploadCutOffError('the upload ended before the file did');
  await mkdir(dir, { recursive: true });
  const received = draftFile(dir);
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
  const draftKey = sealing.seal ? randomBytes(KEY_SIZE) : undefined;
  const draftPlace: Place = (index, last) => `${path.basename(received)}:${index}:${last ? 'last' : 'more'}`;
  try {
    await pipeline(
      file,
      meter,
      ...(draftKey ? [sealer(draftKey, draftPlace)] : []),
      createWriteStream(received, { mode: 0o600 }),
    );
    // @fastify/multipart truncates at its own limit instead of failing the stream.
    if ((file as Readable & { truncated?: boolean }).truncated) throw tooLarge();
  } catch (error) {
    file.destroy();
    await rm(received, { force: true });
    if ((error as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      throw new UploadCutOffError('the upload ended before the file did');
    }
    throw error;
  }
  const sha256 = hash.digest('hex');
  if (!draftKey) return { path: received, sha256, size };
  const sealed = draftFile(dir);
  try {
    const key = await documentKey(sealing.keys, sha256, true);
    const handle = await open(received, 'r');
    try {
      const unreadable = (why: string) => new Error(`the upload draft ${received}: ${why}`);
      const segments = openedSegments(handle, (await handle.stat()).size, draftKey, draftPlace, unreadable);
      await pipeline(
        Readable.from(segments),
        sealer(key, documentPlace(sha256)),
        createWriteStream(sealed, { mode: 0o600 }),
      );
    } finally {
      await handle.close().catch(() => undefined);
    }
    return { path: sealed, sha256, size };
  } catch (error) {
    await rm(sealed, { force: true });
    throw error;
  } finally {
    await rm(received, { force: true });
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

/**
 * Puts a file from elsewhere (an import) into the store as an upload would be (sealed or not);
 * refuses it unless its SHA-256 is `sha256`. Already there: nothing to do.
 */
export async function storeDocumentFile(
  dir: string,
  source: string,
  sha256: string,
  sealing: DocumentSealing,
): Promise<void> {
  if (
    await stat(documentPath(dir, sha256)).then(
      () => true,
      () => false,
    )
  )
    return;
  const handle = await open(source, 'r');
  const draft = await writeDraft(dir, handle.createReadStream(), Number.POSITIVE_INFINITY, sealing);
  try {
    if (draft.sha256 !== sha256) throw new Error(`${source}: its SHA-256 is ${draft.sha256}, not ${sha256}`);
    await commitDraft(dir, draft);
  } finally {
    await discardDraft(draft);
  }
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
