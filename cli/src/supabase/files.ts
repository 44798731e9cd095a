// The storage export (a folder of bucket_id/name) and the document store it feeds.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { type DocumentSealing, storeDocumentFile } from '@connect/command';
import type { FileFacts } from './map-commitments.ts';
import type { SourceDocument } from './source.ts';

/** The bucket commitment_documents.storage_path is a name in. */
export const DOCUMENTS_BUCKET = 'documents';

function exportedPath(storageDir: string, storagePath: string): string | undefined {
  const root = path.resolve(storageDir, DOCUMENTS_BUCKET);
  const file = path.resolve(root, storagePath);
  // A path that climbs out of the bucket is no file of it.
  return file.startsWith(`${root}${path.sep}`) ? file : undefined;
}

/** SHA-256 and size of each document version's exported bytes; null where the export lacks the file. */
export async function factsOf(
  storageDir: string | undefined,
  documents: SourceDocument[],
): Promise<Map<string, FileFacts>> {
  const facts = new Map<string, FileFacts>();
  for (const doc of documents) {
    const file = storageDir === undefined ? undefined : exportedPath(storageDir, doc.storage_path);
    const bytes = file && (await readFile(file).catch(() => undefined));
    facts.set(
      doc.id,
      bytes ? { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length } : null,
    );
  }
  return facts;
}

/** Stores an exported file at its content address, as an upload is (already there: nothing to do). */
export async function storeDocument(
  storageDir: string,
  documentsDir: string,
  doc: SourceDocument,
  sha256: string,
  sealing: DocumentSealing,
) {
  const source = exportedPath(storageDir, doc.storage_path);
  if (!source) throw new Error(`document ${doc.id}: no file`);
  await storeDocumentFile(documentsDir, source, sha256, sealing);
}
