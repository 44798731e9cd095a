// Uploaded files, stored content-addressed under the data directory: the ledger records each
// file's SHA-256, and the path is that hash, so a download is the bytes the ledger describes.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export class DocumentTooLargeError extends Error {}

export function documentPath(dir: string, sha256: string): string {
  return path.join(dir, sha256.slice(0, 2), sha256);
}

/** Streams an upload to disk while hashing it; refuses past `maxBytes`. */
export async function storeDocument(
  dir: string,
  file: Readable,
  maxBytes: number,
): Promise<{ sha256: string; size: number }> {
  await mkdir(dir, { recursive: true });
  const draft = path.join(dir, `.upload-${randomBytes(8).toString('hex')}`);
  const hash = createHash('sha256');
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > maxBytes)
        return done(new DocumentTooLargeError(`documents are limited to ${maxBytes} bytes`));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(file, meter, createWriteStream(draft, { mode: 0o600 }));
    // @fastify/multipart truncates at its own limit instead of failing the stream.
    if ((file as Readable & { truncated?: boolean }).truncated) {
      throw new DocumentTooLargeError(`documents are limited to ${maxBytes} bytes`);
    }
    const sha256 = hash.digest('hex');
    const target = documentPath(dir, sha256);
    await mkdir(path.dirname(target), { recursive: true });
    await rename(draft, target);
    return { sha256, size };
  } catch (error) {
    await rm(draft, { force: true });
    throw error;
  }
}

export async function openDocument(dir: string, sha256: string): Promise<{ stream: Readable; size: number }> {
  const file = documentPath(dir, sha256);
  const { size } = await stat(file);
  return { stream: createReadStream(file), size };
}
