// Copying files into and out of a backup, hashing what was copied: the manifest lists each file
// with its size and SHA-256, and a restore checks them before it uses any.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chown, lstat, mkdir, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface CopiedFile {
  /** Relative to the backup's root, with `/` separators. */
  path: string;
  size: number;
  sha256: string;
}

export interface Owner {
  uid?: number;
  gid?: number;
}

/** Copies one file (mode 0600, or `mode`) and returns its size and SHA-256; undefined when it vanished. */
export async function copyFile(
  from: string,
  to: string,
  options: { owner?: Owner; mode?: number } = {},
): Promise<{ size: number; sha256: string } | undefined> {
  const hash = createHash('sha256');
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(from), meter, createWriteStream(to, { mode: options.mode ?? 0o600 }));
  } catch (error) {
    // A file the server removes while it is copied (a dropped table, a recycled segment) is fine:
    // the WAL replayed from the backup's start recreates whatever a restore needs.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (options.owner?.uid !== undefined && options.owner.gid !== undefined)
    await chown(to, options.owner.uid, options.owner.gid);
  return { size, sha256: hash.digest('hex') };
}

export interface TreeCopy {
  from: string;
  to: string;
  /** Prefix of the paths reported (relative to the backup's root). */
  prefix: string;
  /** Whether to copy an entry (relative path within `from`, `/` separators); a skipped directory is still created empty. */
  include?(relative: string, isDirectory: boolean): boolean | 'empty';
  owner?: Owner;
  /** Stops the copy between two files (it throws the signal's reason). */
  signal?: AbortSignal;
}

/** Copies a directory tree (regular files and directories; nothing else), hashing every file. */
export async function copyTree(copy: TreeCopy, relative = ''): Promise<CopiedFile[]> {
  const source = path.join(copy.from, relative);
  const target = path.join(copy.to, relative);
  await mkdir(target, { recursive: true, mode: 0o700 });
  if (copy.owner?.uid !== undefined && copy.owner.gid !== undefined)
    await chown(target, copy.owner.uid, copy.owner.gid);
  const names = await readdir(source).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const copied: CopiedFile[] = [];
  for (const name of names.sort()) {
    copy.signal?.throwIfAborted();
    const child = relative === '' ? name : `${relative}/${name}`;
    const stats = await lstat(path.join(copy.from, child)).catch(() => undefined);
    if (!stats || !(stats.isFile() || stats.isDirectory())) continue;
    const decision = copy.include ? copy.include(child, stats.isDirectory()) : true;
    if (decision === false) continue;
    if (stats.isDirectory()) {
      if (decision === 'empty') {
        await mkdir(path.join(copy.to, child), { recursive: true, mode: 0o700 });
        if (copy.owner?.uid !== undefined && copy.owner.gid !== undefined)
          await chown(path.join(copy.to, child), copy.owner.uid, copy.owner.gid);
      } else copied.push(...(await copyTree(copy, child)));
      continue;
    }
    const file = await copyFile(path.join(copy.from, child), path.join(copy.to, child), {
      owner: copy.owner,
      mode: stats.mode & 0o777,
    });
    if (file) copied.push({ path: `${copy.prefix}${child}`, ...file });
  }
  return copied;
}

/** SHA-256 and size of a file, streamed. */
export async function hashFile(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    size += chunk.length;
    hash.update(chunk);
  }
  return { size, sha256: hash.digest('hex') };
}

/** Flushes every file and directory under `dir` to disk, so a finished backup survives a crash. */
export async function syncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const child = path.join(dir, entry.name);
    if (entry.isDirectory()) await syncTree(child);
    else if (entry.isFile()) await syncFile(child);
  }
  await syncFile(dir);
}

async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
