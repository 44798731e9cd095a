import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * Reads a secret from a file, creating it once (mode 0600) with `generate()` when absent. The
 * draft is written whole, then linked into place: link fails if the file exists, so processes
 * starting together keep one secret and none reads a half-written file. The file and its
 * directory are synced before it is used: a key that sealed data must survive a power cut.
 */
export async function readOrCreateSecretFile(
  file: string,
  generate: () => string | Promise<string>,
): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(path.dirname(file), { recursive: true });
  const draft = await syncedDraft(file, await generate());
  try {
    await link(draft, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await unlink(draft);
  }
  await syncDirectory(path.dirname(file));
  return readFile(file, 'utf8');
}

/** Replaces a secret file whole (mode 0600), durably: a reader sees the old or the new, never half. */
export async function replaceSecretFile(file: string, text: string): Promise<void> {
  await rename(await syncedDraft(file, text), file);
  await syncDirectory(path.dirname(file));
}

/** A new file beside `file` holding `text`, mode 0600, synced to disk; returns its path. */
async function syncedDraft(file: string, text: string): Promise<string> {
  const draft = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  const handle = await open(draft, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return draft;
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
