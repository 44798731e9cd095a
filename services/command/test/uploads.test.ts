import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { readStream } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { servedMediaType } from '../src/commitments/document-store.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let ana: Account;
let ben: Account;
let port: number;

beforeAll(async () => {
  t = await testApp();
  [ana, ben] = (await Promise.all(['Ana', 'Ben'].map((name) => signUp(t.app, name)))) as [Account, Account];
  port = Number(new URL(await t.app.listen({ port: 0, host: '127.0.0.1' })).port);
});
afterAll(() => t.close());

const documentsDir = () => path.join(t.deps.dataDir, 'documents');

/** Every file under the documents directory, drafts included, with its size. */
async function stored(dir = documentsDir()): Promise<Map<string, number>> {
  const names = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  const files = new Map<string, number>();
  for (const name of names) {
    // A draft may go between the listing and its stat (discarded after its answer was sent).
    const info = await stat(path.join(dir, name)).catch(() => undefined);
    if (info?.isFile()) files.set(name, info.size);
  }
  return files;
}

async function create(): Promise<string> {
  const response = await t.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'Documents' },
    headers: ana.auth,
  });
  expect(response.statusCode).toBe(201);
  return response.json().commitmentId;
}

const action = (id: string, name: string, who: Account, payload: object = {}) =>
  t.app.inject({ method: 'POST', url: `/v1/commitments/${id}/${name}`, payload, headers: who.auth });

const BOUNDARY = 'connect-upload-test';

function formHead(fields: Record<string, string>, file: { name: string; type: string }): Buffer {
  const parts = Object.entries(fields).map(
    ([k, v]) => `--${BOUNDARY}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`,
  );
  return Buffer.from(
    `${parts.join('')}--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="${file.name}"\r\ncontent-type: ${file.type}\r\n\r\n`,
  );
}
const formTail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
const formHeaders = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };

function upload(
  id: string,
  who: Account,
  content: Buffer,
  options: {
    fields?: Record<string, string>;
    type?: string;
    app?: TestApp;
    headers?: Record<string, string>;
  } = {},
) {
  const head = formHead(options.fields ?? {}, { name: 'a.bin', type: options.type ?? 'application/pdf' });
  return (options.app ?? t).app.inject({
    method: 'POST',
    url: `/v1/commitments/${id}/documents`,
    payload: Buffer.concat([head, content, formTail]),
    headers: { ...who.auth, ...formHeaders, ...options.headers },
  });
}

/** A raw HTTP/1.1 exchange: writes the chunks with pauses, resolves with what came back once closed. */
function rawRequest(chunks: (Buffer | (() => Promise<void>))[]): Promise<{ answer: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (data) => {
      answer += data.toString('latin1');
      // One answer is all these tests need; don't wait for a keep-alive connection to close.
      if (/\r\n\r\n[\s\S]*\}$/.test(answer)) socket.end();
    });
    // A server that answered early may close while the rest of the body is still being written.
    socket.on('error', (error) => (answer ? undefined : reject(error)));
    socket.on('close', () => resolve({ answer, ms: Date.now() - started }));
    (async () => {
      for (const chunk of chunks) {
        if (socket.destroyed || socket.writableEnded) return;
        if (Buffer.isBuffer(chunk)) socket.write(chunk);
        else await chunk();
      }
    })().catch(reject);
  });
}

function requestHead(id: string, who: Account, length: number, headers: Record<string, string> = {}): Buffer {
  const more = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return Buffer.from(
    `POST /v1/commitments/${id}/documents HTTP/1.1\r\nhost: localhost\r\nauthorization: ${who.auth.authorization}\r\n` +
      `content-type: ${formHeaders['content-type']}\r\ncontent-length: ${length}\r\n${more.join('')}\r\n`,
  );
}

const pause = (ms: number) => () => new Promise<void>((resolve) => setTimeout(resolve, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('refused uploads leave no bytes', () => {
  test('more than five fields before the file: a prompt 413, no draft, no file', async () => {
    const id = await create();
    const before = await stored();
    const fields = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`f${i}`, 'v']));
    const started = Date.now();
    const response = await upload(id, ana, Buffer.alloc(64 * 1024, 7), { fields });
    expect(response.statusCode).toBe(413);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await stored()).toEqual(before);
  });

  test('the same over a socket, with the file arriving after the fields: answered, nothing stored', async () => {
    const id = await create();
    const before = await stored();
    const fields = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`f${i}`, 'v']));
    const head = formHead(fields, { name: 'a.bin', type: 'application/pdf' });
    const content = Buffer.alloc(256 * 1024, 3);
    const body = Buffer.concat([head, content, formTail]);
    const { answer, ms } = await rawRequest([
      requestHead(id, ana, body.length),
      body.subarray(0, head.length + 100),
      pause(100),
      body.subarray(head.length + 100),
    ]);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(ms).toBeLessThan(5000);
    expect(await stored()).toEqual(before);
  });

  test('a participant who is not the creator gets a 403, and nothing is written', async () => {
    const id = await create();
    expect((await action(id, 'invite', ana, { userId: ben.userId, role: 'participant' })).statusCode).toBe(
      200,
    );
    const before = await stored();
    const response = await upload(id, ben, Buffer.alloc(512 * 1024, 1));
    expect(response.statusCode).toBe(403);
    expect(await stored()).toEqual(before);
  });

  test('a cancelled commitment gets a 409, and nothing is written', async () => {
    const id = await create();
    expect((await action(id, 'cancel', ana)).statusCode).toBe(200);
    const before = await stored();
    const response = await upload(id, ana, Buffer.alloc(512 * 1024, 2));
    expect(response.statusCode).toBe(409);
    expect(await stored()).toEqual(before);
  });

  test('a stale If-Match gets a 412 before any byte is written', async () => {
    const id = await create();
    const before = await stored();
    const response = await t.app.inject({
      method: 'POST',
      url: `/v1/commitments/${id}/documents`,
      payload: Buffer.concat([formHead({}, { name: 'a', type: 'text/plain' }), Buffer.from('x'), formTail]),
      headers: { ...ana.auth, ...formHeaders, 'if-match': '"7"' },
    });
    expect(response.statusCode).toBe(412);
    expect(await stored()).toEqual(before);
  });

  test('an upload over the limit is a 413 and leaves nothing', async () => {
    const small = await testApp({ maxDocumentBytes: 1024 });
    try {
      const owner = await signUp(small.app, 'Small');
      const created = await small.app.inject({
        method: 'POST',
        url: '/v1/commitments',
        payload: { type: 'personal', title: 'x' },
        headers: owner.auth,
      });
      const id = created.json().commitmentId;
      const response = await upload(id, owner, Buffer.alloc(64 * 1024, 1), { app: small });
      expect(response.statusCode).toBe(413);
      expect(await stored(path.join(small.deps.dataDir, 'documents'))).toEqual(new Map());
    } finally {
      await small.close();
    }
  });

  test('an append refused after the bytes arrived removes them, but not a file another document uses', async () => {
    const shared = Buffer.from('%PDF-1.7 the same bytes on two commitments');
    const other = await create();
    expect((await upload(other, ana, shared)).statusCode).toBe(201);
    const sharedFile = path.join(sha(shared).slice(0, 2), sha(shared));
    expect((await stored()).has(sharedFile)).toBe(true);

    // The commitment is cancelled while each upload streams: the append is then refused (409).
    for (const content of [shared, Buffer.from('bytes nobody else has')]) {
      const id = await create();
      const before = await stored();
      const head = formHead({}, { name: 'late.pdf', type: 'application/pdf' });
      const body = Buffer.concat([head, content, formTail]);
      const { answer } = await rawRequest([
        requestHead(id, ana, body.length),
        body.subarray(0, head.length + 5),
        pause(300), // past the decision made before streaming
        async () => {
          expect((await action(id, 'cancel', ana)).statusCode).toBe(200);
        },
        body.subarray(head.length + 5),
      ]);
      expect(answer).toMatch(/^HTTP\/1\.1 409 /);
      expect(await stored()).toEqual(before);
    }
    expect((await stored()).has(sharedFile)).toBe(true);
    const rows = (await readStream(t.database.db, t.deps.ledger, `commitment-${other}`)).filter(
      (entry) => entry.type === 'DocumentAttached',
    ) as unknown as { data: { documentId: string } }[];
    const download = await t.app.inject({
      method: 'GET',
      url: `/v1/commitments/${other}/documents/${rows[0]?.data.documentId}/content`,
      headers: ana.auth,
    });
    expect(download.rawPayload.equals(shared)).toBe(true);
  });
});

describe('an upload retried with its Idempotency-Key', () => {
  test('gets the first answer again, even once its If-Match is stale and the commitment has moved on', async () => {
    const id = await create();
    const content = Buffer.from('%PDF-1.7 sent twice, recorded once');
    const keyed = { 'idempotency-key': `upload-${id}`, 'if-match': '"1"' };
    const first = await upload(id, ana, content, { headers: keyed });
    expect(first.statusCode).toBe(201);
    const again = await upload(id, ana, content, { headers: keyed });
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    // Cancelled: a new upload is refused, the retry of the recorded one still answered as it was.
    expect((await action(id, 'cancel', ana)).statusCode).toBe(200);
    const later = await upload(id, ana, content, { headers: keyed });
    expect(later.statusCode).toBe(201);
    expect(later.json()).toEqual(first.json());
    const attached = (await readStream(t.database.db, t.deps.ledger, `commitment-${id}`)).filter(
      (entry) => entry.type === 'DocumentAttached',
    );
    expect(attached).toHaveLength(1);
    // A new key is decided afresh: refused, its bytes not kept (drafts go once answered).
    const drafts = async () => [...(await stored()).keys()].filter((name) => name.includes('.upload-'));
    await expect.poll(drafts).toEqual([]);
    const before = await stored();
    const fresh = await upload(id, ana, content, {
      headers: { 'idempotency-key': `another-${id}`, 'if-match': '"1"' },
    });
    expect(fresh.statusCode).toBe(412);
    await expect.poll(stored).toEqual(before);
  });

  test('a key not used before is decided first: a refused upload is answered before its file arrives', async () => {
    const id = await create();
    expect((await action(id, 'invite', ana, { userId: ben.userId, role: 'participant' })).statusCode).toBe(
      200,
    );
    const before = await stored();
    const head = formHead({}, { name: 'a.bin', type: 'application/pdf' });
    const body = Buffer.concat([head, Buffer.alloc(256 * 1024, 4), formTail]);
    const { answer, ms } = await rawRequest([
      requestHead(id, ben, body.length, { 'idempotency-key': `refused-${id}` }),
      body.subarray(0, head.length + 100),
      // The rest of the file only after 10 s: an answer sooner was decided without it.
      pause(10_000),
      body.subarray(head.length + 100),
    ]);
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(ms).toBeLessThan(5000);
    expect(await stored()).toEqual(before);
  });

  test('a key that is not one is a 400 naming the header, and nothing is written', async () => {
    const id = await create();
    const before = await stored();
    const response = await upload(id, ana, Buffer.from('%PDF-1.7'), {
      headers: { 'idempotency-key': 'not a key' },
    });
    expect(response.statusCode).toBe(400);
    expect(JSON.stringify(response.json())).toContain('header.idempotency-key');
    expect(await stored()).toEqual(before);
  });
});

describe('downloads', () => {
  async function attachedId(id: string): Promise<string> {
    const attached = (await readStream(t.database.db, t.deps.ledger, `commitment-${id}`)).filter(
      (entry) => entry.type === 'DocumentAttached',
    );
    return attached.at(-1)?.data?.documentId as string;
  }

  test.each([
    ['text/html', '<script>alert(document.cookie)</script>'],
    ['image/svg+xml', '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'],
    ['application/xhtml+xml', '<html xmlns="http://www.w3.org/1999/xhtml"/>'],
    ['text/javascript', 'alert(1)'],
  ])('a %s upload is served as bytes, never as an active type', async (type, text) => {
    const id = await create();
    expect((await upload(id, ana, Buffer.from(text), { type })).statusCode).toBe(201);
    const download = await t.app.inject({
      method: 'GET',
      url: `/v1/commitments/${id}/documents/${await attachedId(id)}/content`,
      headers: ana.auth,
    });
    expect(download.statusCode).toBe(200);
    expect(download.headers['content-type']).toBe('application/octet-stream');
    expect(download.headers['x-content-type-options']).toBe('nosniff');
    expect(download.headers['content-security-policy']).toBe('sandbox');
    expect(download.headers['content-disposition']).toMatch(/^attachment;/);
    expect(download.body).toBe(text);
  });

  test('a passive type keeps its type, with the same protective headers', async () => {
    const id = await create();
    expect((await upload(id, ana, Buffer.from('%PDF-1.7'))).statusCode).toBe(201);
    const download = await t.app.inject({
      method: 'GET',
      url: `/v1/commitments/${id}/documents/${await attachedId(id)}/content`,
      headers: ana.auth,
    });
    expect(download.headers['content-type']).toBe('application/pdf');
    expect(download.headers['x-content-type-options']).toBe('nosniff');
    expect(download.headers['content-security-policy']).toBe('sandbox');
  });

  test('servedMediaType', () => {
    expect(servedMediaType('image/png')).toBe('image/png');
    expect(servedMediaType('Text/Plain; charset=utf-8')).toBe('text/plain');
    expect(servedMediaType('application/vnd.openxmlformats-officedocument.wordprocessingml.document')).toBe(
      'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    );
    for (const active of [
      'text/html',
      'TEXT/HTML; charset=utf-8',
      'application/xml',
      'text/xml',
      'application/atom+xml',
      'application/javascript',
      'text/xsl',
      'nonsense',
      '',
    ]) {
      expect(servedMediaType(active)).toBe('application/octet-stream');
    }
  });
});

test('drafts a crash left behind are removed at start; stored documents and live drafts stay', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-drafts-'));
  const dir = path.join(dataDir, 'documents');
  const document = path.join('ab', `ab${'0'.repeat(62)}`);
  await mkdir(path.join(dir, 'ab'), { recursive: true });
  const hourAgo = new Date(Date.now() - 3600_000);
  for (const [name, text] of [
    ['.upload-0123456789abcdef', 'half an upload'],
    ['.upload-fedcba9876543210', ''],
    [document, 'a stored document'],
  ] as const) {
    await writeFile(path.join(dir, name), text);
    await utimes(path.join(dir, name), hourAgo, hourAgo);
  }
  // Another process sharing the directory may be writing this one right now.
  await writeFile(path.join(dir, '.upload-1111111111111111'), 'streaming');
  const restarted = await testApp({ dataDir });
  try {
    expect([...(await stored(dir)).keys()].sort()).toEqual(['.upload-1111111111111111', document]);
  } finally {
    await restarted.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
