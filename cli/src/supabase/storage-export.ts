// The storage export: a folder of bucket_id/name, as the Supabase project's buckets were saved.
// Only node: the mapping thread reads it too, and loads no more than it needs.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FileFacts } from './map-commitments.ts';
import type { SourceDocument } from './source.ts';

/** The bucket commitment_documents.storage_path is a name in. */
const DOCUMENTS_BUCKET = 'documents';

/** Where the export keeps a document's file; undefined for a path that climbs out of the bucket. */
export function exportedPath(storageDir: string, storagePath: string): string | undefined {
  const root = path.resolve(storageDir, DOCUMENTS_BUCKET);
  const file = path.resolve(root, storagePath);
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
