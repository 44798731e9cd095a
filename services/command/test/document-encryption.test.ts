import { createHash, randomUUID } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { readStream } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  commitDraft,
  DocumentUnreadableError,
  documentDigest,
  documentPath,
  openDocument,
  writeDraft,
} from '../src/commitments/document-store.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let ana: Account;

beforeAll(async () => {
  t = await testApp();
  ana = await signUp(t.app, 'Ana');
});
afterAll(() => t.close());

const documentsDir = () => path.join(t.deps.dataDir, 'documents');
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const HEADER_SIZE = 15;
const SEGMENT = 64 * 1024;
const SEALED_SEGMENT = SEGMENT + 29;

/** `size` bytes holding a marker found nowhere else, at the start and past the first segment. */
function document(size: number): { bytes: Buffer; marker: string } {
  const marker = `MARKER-${randomUUID()}`;
  const bytes = Buffer.alloc(size, '.');
  bytes.write(marker, 0);
  if (size > SEGMENT + 100) bytes.write(marker, SEGMENT + 50);
  return { bytes, marker };
}

async function create(): Promise<string> {
  const response = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'Sealed documents' },
    headers: ana.auth,
  });
  expect(response.statusCode).toBe(201);
  return response.json().commitmentId;
}

const BOUNDARY = 'connect-sealed-test';

/** Uploads `bytes` to a new commitment; the commitment and the document's id. */
async function uploaded(bytes: Buffer): Promise<{ id: string; documentId: string }> {
  const id = await create();
  const head = Buffer.from(
    `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="a.bin"\r\ncontent-type: application/pdf\r\n\r\n`,
  );
  const response = await t.app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/documents`,
    payload: Buffer.concat([head, bytes, Buffer.from(`\r\n--${BOUNDARY}--\r\n`)]),
    headers: { ...ana.auth, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
  });
  expect(response.statusCode).toBe(201);
  const entries = await readStream(t.database.db, t.deps.ledger, `commitment-${id}`);
  const attached = entries.find((entry) => entry.type === 'DocumentAttached');
  return { id, documentId: String(attached?.data?.documentId) };
}

const download = (id: string, documentId: string) =>
  t.app.inject({
    method: 'GET',
    url: `/v1/commitments/${id}/documents/${documentId}/content`,
    headers: ana.auth,
  });

/** The download of a file that must not open: a 500 problem, or a cut-off body, never the bytes. */
async function expectRefused(id: string, documentId: string, plaintext: Buffer): Promise<void> {
  const response = await download(id, documentId).catch((error: Error) => error);
  if (response instanceof Error) return; // the stream failed after the head was sent: the response is cut off
  if (response.statusCode === 500) {
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).not.toContain(plaintext.subarray(0, 40).toString());
    return;
  }
  // Headers were sent before a later segment failed: what arrived is short of what was promised.
  expect(response.rawPayload.length).toBeLessThan(Number(response.headers['content-length']));
  expect(response.rawPayload.equals(plaintext)).toBe(false);
  expect(plaintext.subarray(0, response.rawPayload.length).equals(response.rawPayload)).toBe(true);
}

/** Segments of a sealed file, after its header. */
function segmentsOf(file: Buffer): Buffer[] {
  const segments: Buffer[] = [];
  for (let at = HEADER_SIZE; at < file.length; at += SEALED_SEGMENT)
    segments.push(file.subarray(at, at + SEALED_SEGMENT));
  return segments;
}

describe('documents at rest', () => {
  test('an upload is stored sealed, with nothing of it readable on disk, and downloads as it was', async () => {
    const { bytes, marker } = document(3 * SEGMENT + 123);
    const { id, documentId } = await uploaded(bytes);
    const file = await readFile(documentPath(documentsDir(), sha(bytes)));
    expect(file.includes(marker)).toBe(false);
    expect(file.length).toBe(HEADER_SIZE + bytes.length + 4 * 29);
    // No draft (sealed or not) is left behind either.
    const names = await readdir(documentsDir(), { recursive: true });
    expect(names.filter((name) => path.basename(name).startsWith('.upload-'))).toEqual([]);

    const response = await download(id, documentId);
    expect(response.statusCode).toBe(200);
    expect(Number(response.headers['content-length'])).toBe(bytes.length);
    expect(response.headers.etag).toBe(`"${sha(bytes)}"`);
    expect(response.rawPayload.equals(bytes)).toBe(true);
  });

  test('small, empty and exactly-one-segment documents round-trip', async () => {
    for (const size of [0, 1, SEGMENT, 2 * SEGMENT]) {
      const { bytes } = document(size);
      const { id, documentId } = await uploaded(bytes);
      const response = await download(id, documentId);
      expect(response.statusCode).toBe(200);
      expect(response.rawPayload.equals(bytes)).toBe(true);
    }
  });

  test('the same content on two commitments is one file, under one key', async () => {
    const { bytes } = document(1000);
    const first = await uploaded(bytes);
    const second = await uploaded(bytes);
    for (const { id, documentId } of [first, second])
      expect((await download(id, documentId)).rawPayload.equals(bytes)).toBe(true);
    const { rows } = await t.database.pool.query('select 1 from data_keys where subject = $1', [
      `document:${sha(bytes)}`,
    ]);
    expect(rows).toHaveLength(1);
  });

  test('a segment altered, swapped, truncated, or a file moved to another document does not download', async () => {
    const { bytes } = document(3 * SEGMENT + 10);
    const { id, documentId } = await uploaded(bytes);
    const file = documentPath(documentsDir(), sha(bytes));
    const original = await readFile(file);
    const [s0, s1, s2, s3] = segmentsOf(original) as [Buffer, Buffer, Buffer, Buffer];
    const header = original.subarray(0, HEADER_SIZE);
    const flipped = Buffer.from(original);
    flipped[HEADER_SIZE + 100] = (flipped[HEADER_SIZE + 100] ?? 0) ^ 1;

    const tampered: [string, Buffer][] = [
      ['a flipped bit in the first segment', flipped],
      ['the first two segments swapped', Buffer.concat([header, s1, s0, s2, s3])],
      ['two later segments swapped', Buffer.concat([header, s0, s2, s1, s3])],
      ['the last segment cut off', Buffer.concat([header, s0, s1, s2])],
      ['all but the first segment cut off', Buffer.concat([header, s0])],
      ['a segment dropped', Buffer.concat([header, s0, s2, s3])],
      ['cut inside a segment', original.subarray(0, original.length - 5)],
      ['the header only', header],
    ];
    // Refused whole (a 500 before any byte): altered at either end, truncated, moved.
    for (const [what, bytesOnDisk] of tampered.filter(([what]) =>
      /cut|first|header|version|dropped/.test(what),
    )) {
      await writeFile(file, bytesOnDisk);
      const response = await download(id, documentId);
      expect(response.statusCode, what).toBe(500);
      expect(response.headers['content-type'], what).toMatch(/^application\/problem\+json/);
    }
    for (const [what, bytesOnDisk] of tampered) {
      await writeFile(file, bytesOnDisk);
      await expectRefused(id, documentId, bytes).catch((error: Error) => {
        throw new Error(`${what}: ${error.message}`);
      });
    }

    // Another document's sealed file at this one's path.
    const other = document(500);
    await uploaded(other.bytes);
    await copyFile(documentPath(documentsDir(), sha(other.bytes)), file);
    const moved = await download(id, documentId);
    expect(moved.statusCode).toBe(500);
    expect(moved.headers['content-type']).toMatch(/^application\/problem\+json/);

    await writeFile(file, original);
    expect((await download(id, documentId)).rawPayload.equals(bytes)).toBe(true);
  });

  test('a plaintext file whose bytes are not its hash is cut off at its end', async () => {
    const { bytes } = document(SEGMENT + 7);
    const { id, documentId } = await uploaded(bytes);
    const altered = Buffer.from(bytes);
    altered[SEGMENT] = 0;
    await writeFile(documentPath(documentsDir(), sha(bytes)), altered);
    const response = await download(id, documentId).catch((error: Error) => error);
    if (!(response instanceof Error)) expect(response.rawPayload.equals(altered)).toBe(false);
  });

  test('a plaintext file from before encryption still downloads', async () => {
    const { bytes } = document(2 * SEGMENT + 7);
    const { id, documentId } = await uploaded(bytes);
    await writeFile(documentPath(documentsDir(), sha(bytes)), bytes);
    const response = await download(id, documentId);
    expect(response.statusCode).toBe(200);
    expect(Number(response.headers['content-length'])).toBe(bytes.length);
    expect(response.rawPayload.equals(bytes)).toBe(true);
  });
});

describe('the document store', () => {
  test('with encryption off, files are written plaintext and read back', async () => {
    const { bytes } = document(SEGMENT + 5);
    const sealing = { keys: t.deps.keys, seal: false };
    const draft = await writeDraft(documentsDir(), Readable.from([bytes]), 10 * SEGMENT, sealing);
    await commitDraft(documentsDir(), draft);
    expect((await readFile(documentPath(documentsDir(), sha(bytes)))).equals(bytes)).toBe(true);
    expect(await documentDigest(documentPath(documentsDir(), sha(bytes)), sha(bytes), t.deps.keys)).toEqual({
      sha256: sha(bytes),
      size: bytes.length,
    });
  });

  test('an upload never reaches the disk as plaintext, even while it streams', async () => {
    const { bytes, marker } = document(2 * SEGMENT + 10);
    const upload = new PassThrough();
    const sealing = { keys: t.deps.keys, seal: true };
    const writing = writeDraft(documentsDir(), upload, 10 * SEGMENT, sealing);
    upload.write(bytes.subarray(0, SEGMENT + 100));
    let drafts: Buffer[] = [];
    for (let tries = 0; tries < 100 && !drafts.some((d) => d.length > HEADER_SIZE); tries++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      const names = (await readdir(documentsDir())).filter((name) => name.startsWith('.upload-'));
      drafts = await Promise.all(names.map((name) => readFile(path.join(documentsDir(), name))));
    }
    expect(drafts.some((d) => d.length > HEADER_SIZE)).toBe(true);
    for (const draft of drafts) expect(draft.includes(marker)).toBe(false);
    upload.end(bytes.subarray(SEGMENT + 100));
    const draft = await writing;
    expect(draft.sha256).toBe(sha(bytes));
    expect((await readFile(draft.path)).includes(marker)).toBe(false);
    await commitDraft(documentsDir(), draft);
    const opened = await openDocument(documentsDir(), sha(bytes), t.deps.keys);
    expect(opened.size).toBe(bytes.length);
    const chunks: Buffer[] = [];
    for await (const chunk of opened.stream as AsyncIterable<Buffer>) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });

  test('a sealed file whose key was never made does not open', async () => {
    const { bytes } = document(100);
    const stray = documentPath(documentsDir(), sha(bytes));
    const sealedElsewhere = await writeDraft(documentsDir(), Readable.from([document(100).bytes]), 1000, {
      keys: t.deps.keys,
      seal: true,
    });
    await commitDraft(documentsDir(), sealedElsewhere);
    await mkdir(path.dirname(stray), { recursive: true });
    await copyFile(documentPath(documentsDir(), sealedElsewhere.sha256), stray);
    await expect(openDocument(documentsDir(), sha(bytes), t.deps.keys)).rejects.toBeInstanceOf(
      DocumentUnreadableError,
    );
    await rm(stray);
  });
});
