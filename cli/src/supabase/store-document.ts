// An exported document's bytes into the document store.
import { type DocumentSealing, storeDocumentFile } from '@connect/command';
import type { SourceDocument } from './source.ts';
import { exportedPath } from './storage-export.ts';

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
