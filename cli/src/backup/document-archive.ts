// Documents beside the WAL: with CONNECT_WAL_ARCHIVE, `connect start` copies every new document
// into <archive>/documents every few seconds, so a restore to a moment after the base backup
// finds the documents uploaded since. Documents are content-addressed and never change, so a
// file archived once stays right. A file is archived as stored (sealed or not).
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { documentDigest } from '@connect/command';
import type { KeyRing } from '@connect/db';
import { copyFile } from './copy-files.ts';

const INTERVAL_MS = 10_000;
const NAME = /^[0-9a-f]{64}$/;

export const archivedDocumentsDir = (walArchive: string) => path.join(walArchive, 'documents');

/** Copies the documents not yet in `archiveDir` (checking each copy's plaintext SHA-256 against its name); returns how many. */
export async function archiveDocuments(
  documentsDir: string,
  archiveDir: string,
  keys: KeyRing,
  known = new Set<string>(),
): Promise<number> {
  let count = 0;
  const prefixes = await readdir(documentsDir).catch(() => [] as string[]);
  for (const prefix of prefixes.filter((name) => /^[0-9a-f]{2}$/.test(name))) {
    for (const name of await readdir(path.join(documentsDir, prefix)).catch(() => [] as string[])) {
      if (!NAME.test(name) || known.has(name)) continue;
      const target = path.join(archiveDir, prefix, name);
      if (!existsSync(target)) {
        await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
        const draft = `${target}.partial`;
        const copied = await copyFile(path.join(documentsDir, prefix, name), draft);
        const digest = copied && (await documentDigest(draft, name, keys).catch(() => undefined));
        if (digest?.sha256 !== name) {
          await rm(draft, { force: true });
          continue;
        }
        await rename(draft, target);
        count++;
      }
      known.add(name);
    }
  }
  return count;
}

export interface DocumentArchiving {
  stop(): Promise<void>;
}

export function startDocumentArchiving(
  dataDir: string,
  walArchive: string,
  keys: KeyRing,
  log: { error(details: object, message: string): void },
): DocumentArchiving {
  const known = new Set<string>();
  let round: Promise<unknown> = Promise.resolve();
  const run = () => {
    round = archiveDocuments(
      path.join(dataDir, 'documents'),
      archivedDocumentsDir(walArchive),
      keys,
      known,
    ).catch((error: Error) => log.error({ err: error.message }, 'archiving documents failed'));
  };
  run();
  const timer = setInterval(() => round.then(run), INTERVAL_MS);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await round;
    },
  };
}
