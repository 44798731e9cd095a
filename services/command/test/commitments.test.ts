import { createHash, createHmac } from 'node:crypto';
import { type JsonValue, jcsText } from '@connect/crypto';
import { readEntries, readStream } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ABANDONED_AFTER_MS, IDEMPOTENCY_REQUEST_KEY } from '../src/idempotency.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let ana: Account;
let ben: Account;
let cy: Account;
let eve: Account;

beforeAll(async () => {
  t = await testApp();
  [ana, ben, cy, eve] = (await Promise.all(
    ['Ana', 'Ben', 'Cy', 'Eve'].map((name) => signUp(t.app, name)),
  )) as [Account, Account, Account, Account];
  // An invitation by address reaches only an account that verified it.
  await t.database.pool.query('update users set email_verified_at = now() where id = $1', [ben.userId]);
});
afterAll(() => t.close());

const post = (url: string, who: Account, payload: unknown = {}, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url, payload: payload as object, headers: { ...who.auth, ...headers } });

async function create(who: Account, body: Record<string, unknown> = {}): Promise<string> {
  const response = await post('/v1/commitments', who, {
    type: 'personal',
    title: 'Lend Ben 200 EUR',
    ...body,
  });
  expect(response.statusCode).toBe(201);
  return response.json().commitmentId;
}

describe('the lifecycle over HTTP', () => {
  test('create, invite, propose, accept: the accept activates the commitment in the same receipt', async () => {
    const created = await post('/v1/commitments', ana, {
      type: 'financial',
      title: 'Lend Ben 200 EUR',
      amount: { minor: 20000, currency: 'EUR' },
      dueAt: '2030-06-01T00:00:00.000Z',
    });
    expect(created.statusCode).toBe(201);
    expect(created.headers.etag).toBe('"1"');
    const receipt = created.json();
    expect(receipt).toMatchObject({
      version: 1,
      events: [{ index: expect.any(Number), type: 'CommitmentDrafted' }],
    });
    expect(receipt.events[0].leafHash).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    const id = receipt.commitmentId;

    expect(
      (await post(`/v1/commitments/${id}/invite`, ana, { email: ben.email, role: 'participant' })).statusCode,
    ).toBe(202);
    expect((await post(`/v1/commitments/${id}/propose`, ana)).statusCode).toBe(200);
    const accepted = await post(`/v1/commitments/${id}/accept`, ben);
    expect(accepted.statusCode).toBe(200);
    expect(accepted.json().events.map((e: { type: string }) => e.type)).toEqual([
      'InvitationAccepted',
      'CommitmentActivated',
    ]);
    expect(accepted.headers.etag).toBe('"5"');

    const stream = await readStream(t.database.db, t.deps.ledger, `commitment-${id}`);
    expect(stream.map((e) => [e.version, e.type, e.actor])).toEqual([
      [1, 'CommitmentDrafted', ana.userId],
      [2, 'PartyInvited', ana.userId],
      [3, 'CommitmentProposed', ana.userId],
      [4, 'InvitationAccepted', ben.userId],
      [5, 'CommitmentActivated', ben.userId],
    ]);
  });

  test('claim, confirm: fulfilled', async () => {
    const id = await create(ana);
    await post(`/v1/commitments/${id}/invite`, ana, { userId: ben.userId, role: 'participant' });
    await post(`/v1/commitments/${id}/propose`, ana);
    await post(`/v1/commitments/${id}/accept`, ben);
    expect((await post(`/v1/commitments/${id}/claim-fulfilment`, ben, { note: 'paid' })).statusCode).toBe(
      200,
    );
    const confirmed = await post(`/v1/commitments/${id}/confirm-fulfilment`, ana);
    expect(confirmed.json().events.map((e: { type: string }) => e.type)).toEqual(['FulfilmentConfirmed']);
  });
});

describe('errors', () => {
  test('400 names each invalid field', async () => {
    const response = await post('/v1/commitments', ana, {
      type: 'personal',
      title: '',
      amount: { minor: -1, currency: 'eur' },
      extra: 1,
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/problem\+json/);
    const paths = response
      .json()
      .errors.map((e: { path: string }) => e.path)
      .sort();
    expect(paths).toEqual(['body', 'body.amount.currency', 'body.amount.minor', 'body.title']);
  });

  test('400 for an unknown commitment type; inviting an unknown email answers as for a known one', async () => {
    const unknownType = await post('/v1/commitments', ana, { type: 'no-such-type', title: 'x' });
    expect(unknownType.statusCode).toBe(400);
    expect(unknownType.json().errors[0].path).toBe('body.type');
    const id = await create(ana);
    const unknown = await post(`/v1/commitments/${id}/invite`, ana, {
      email: 'nobody@example.test',
      role: 'participant',
    });
    expect(unknown.statusCode).toBe(202);
    expect(unknown.json()).toEqual({
      commitmentId: id,
      invitation: { email: 'nobody@example.test', role: 'participant', status: 'sent' },
    });
  });

  test('401 without a token', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/commitments',
      payload: { type: 'personal', title: 'x' },
    });
    expect(response.statusCode).toBe(401);
  });

  test('404 for an unknown commitment and for one you may not see; a malformed id is a 400', async () => {
    const id = await create(ana);
    expect((await post(`/v1/commitments/${crypto.randomUUID()}/propose`, ana)).statusCode).toBe(404);
    const hidden = await post(`/v1/commitments/${id}/accept`, eve);
    expect(hidden.statusCode).toBe(404);
    expect(hidden.json().detail).toBe('No such commitment, or it is not visible to you.');
    expect((await post('/v1/commitments/not-a-uuid/propose', ana)).statusCode).toBe(400);
  });

  test('403 for a party who may not do it; 409 with a reason for the wrong state', async () => {
    const id = await create(ana);
    await post(`/v1/commitments/${id}/invite`, ana, { userId: ben.userId, role: 'participant' });
    const forbidden = await post(`/v1/commitments/${id}/propose`, ben);
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().detail).toBe('only the creator can propose the commitment');
    const conflict = await post(`/v1/commitments/${id}/accept`, ben);
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json().detail).toMatch(/the commitment is a draft/);
  });

  test('412 when If-Match is stale, and the command then appends nothing', async () => {
    const id = await create(ana);
    const stale = await post(
      `/v1/commitments/${id}/update`,
      ana,
      { title: 'New title' },
      { 'if-match': '"0"' },
    );
    expect(stale.statusCode).toBe(412);
    const fresh = await post(
      `/v1/commitments/${id}/update`,
      ana,
      { title: 'New title' },
      { 'if-match': '"1"' },
    );
    expect(fresh.statusCode).toBe(200);
    expect((await readStream(t.database.db, t.deps.ledger, `commitment-${id}`)).length).toBe(2);
  });

  test('413 for a body over the limit, 415 for a body that is not JSON', async () => {
    const big = await post('/v1/commitments', ana, {
      type: 'personal',
      title: 'x',
      description: 'x'.repeat(2 * 1024 * 1024),
    });
    expect(big.statusCode).toBe(413);
    const text = await t.app.inject({
      method: 'POST',
      url: '/v1/commitments',
      payload: 'hello',
      headers: { ...ana.auth, 'content-type': 'text/plain' },
    });
    expect(text.statusCode).toBe(415);
  });

  test('404 for an unknown action', async () => {
    const id = await create(ana);
    expect((await post(`/v1/commitments/${id}/explode`, ana)).statusCode).toBe(404);
  });
});

describe('idempotency', () => {
  /** A create's request as the service keys it: an HMAC under its derived key. */
  const requestHashOf = async (body: unknown) =>
    createHmac('sha256', await t.deps.keys.derivedKey(IDEMPOTENCY_REQUEST_KEY))
      .update('POST /v1/commitments\n')
      .update(jcsText(body as JsonValue))
      .digest();

  test('a retry with the same key and body replays the first response and appends nothing', async () => {
    const headers = { 'idempotency-key': `create-${Date.now()}` };
    const body = { type: 'personal', title: 'Once only' };
    const first = await post('/v1/commitments', ana, body, headers);
    const again = await post('/v1/commitments', ana, body, headers);
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect(again.headers.etag).toBe(first.headers.etag);
    expect(again.headers['idempotency-replayed']).toBe('true');
    expect(await entriesTitled('Once only')).toHaveLength(1);
    // What the request was is kept only as a keyed hash: a plain one would confirm a guessed body.
    const { rows } = await t.database.pool.query<{ request_hash: Buffer }>(
      'select request_hash from http_idempotency where key = $1',
      [headers['idempotency-key']],
    );
    const plain = createHash('sha256').update('POST /v1/commitments\n').update(jcsText(body)).digest();
    expect(rows[0]?.request_hash.equals(plain)).toBe(false);
    expect(rows[0]?.request_hash.equals(await requestHashOf(body))).toBe(true);
  });

  test('the same key with another body is a 422', async () => {
    const headers = { 'idempotency-key': `other-${Date.now()}` };
    await post('/v1/commitments', ana, { type: 'personal', title: 'A' }, headers);
    const other = await post('/v1/commitments', ana, { type: 'personal', title: 'B' }, headers);
    expect(other.statusCode).toBe(422);
  });

  test('a retry while the first is still in flight is a 409', async () => {
    const key = `inflight-${Date.now()}`;
    const body = { type: 'personal', title: 'in flight' };
    // The first request has claimed the key and not finished: its record has no response yet.
    const hash = await requestHashOf(body);
    await t.database.pool.query(
      'insert into http_idempotency (user_id, key, request_hash) values ($1, $2, $3)',
      [ana.userId, key, hash],
    );
    const retry = await post('/v1/commitments', ana, body, { 'idempotency-key': key });
    expect(retry.statusCode).toBe(409);
    expect(retry.json().detail).toMatch(/still in progress/);
    expect(await entriesTitled('in flight')).toHaveLength(0);
  });

  test('the stored response is sealed under the caller’s key, bound to its key: moved it does not open', async () => {
    const body = { type: 'personal', title: 'Sealed reply' };
    const first = await post('/v1/commitments', ana, body, { 'idempotency-key': `sealed-${Date.now()}` });
    const { commitmentId } = first.json() as { commitmentId: string };
    const { rows } = await t.database.pool.query<{ key: string; row: string }>(
      'select key, t::text as row from http_idempotency t where user_id = $1 and status is not null',
      [ana.userId],
    );
    const stored = rows.find((row) => row.key.startsWith('sealed-'));
    expect(stored?.row).not.toContain(commitmentId);
    expect(stored?.row).not.toContain(Buffer.from(commitmentId).toString('hex'));
    const replayed = await post('/v1/commitments', ana, body, { 'idempotency-key': stored?.key ?? '' });
    expect(replayed.json()).toEqual(first.json());

    // Another key's record, given this one's sealed body: the retry fails rather than answer it.
    const other = `moved-${Date.now()}`;
    const moved = { type: 'personal', title: 'Moved reply' };
    await post('/v1/commitments', ana, moved, { 'idempotency-key': other });
    await t.database.pool.query(
      `update http_idempotency set body = (select body from http_idempotency where user_id = $1 and key = $2)
        where user_id = $1 and key = $3`,
      [ana.userId, stored?.key, other],
    );
    const broken = await post('/v1/commitments', ana, moved, { 'idempotency-key': other });
    expect(broken.statusCode).toBe(500);
    expect(broken.body).not.toContain(commitmentId);
    expect(await entriesTitled('Moved reply')).toHaveLength(1);
  });

  test('a response stored before sealing (clear JSON, as migrated) is replayed as it was', async () => {
    const key = `clear-${Date.now()}`;
    const body = { type: 'personal', title: 'stored in the clear' };
    const hash = await requestHashOf(body);
    const response = { commitmentId: '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10', version: 1, events: [] };
    await t.database.pool.query(
      `insert into http_idempotency (user_id, key, request_hash, status, body, headers)
       values ($1, $2, $3, 201, convert_to($4::jsonb::text, 'UTF8'), '{"etag": "\\"1\\""}')`,
      [ana.userId, key, hash, JSON.stringify(response)],
    );
    const retry = await post('/v1/commitments', ana, body, { 'idempotency-key': key });
    expect(retry.statusCode).toBe(201);
    expect(retry.json()).toEqual(response);
    expect(retry.headers.etag).toBe('"1"');
    expect(await entriesTitled('stored in the clear')).toHaveLength(0);
  });

  test('once the caller’s key is erased the stored response is gone: a retry is a 410 and does nothing', async () => {
    const dan = await signUp(t.app, 'Dan');
    const key = `erased-${Date.now()}`;
    const body = { type: 'personal', title: 'Forgotten reply' };
    expect((await post('/v1/commitments', dan, body, { 'idempotency-key': key })).statusCode).toBe(201);
    await t.database.pool.query(
      `update data_keys set wrapped_key = null, master_key_id = null, erased_at = now() where subject = $1`,
      [`user:${dan.userId}`],
    );
    t.deps.keys.forget(`user:${dan.userId}`);
    const retry = await post('/v1/commitments', dan, body, { 'idempotency-key': key });
    expect(retry.statusCode).toBe(410);
    expect(retry.json()).toMatchObject({ type: '/problems/idempotency-response-erased', status: 410 });
    expect(await entriesTitled('Forgotten reply')).toHaveLength(1);
    // Nothing of theirs is stored any more: a new request's response is not kept either.
    const next = `after-${Date.now()}`;
    const later = { type: 'personal', title: 'After the erasure' };
    expect((await post('/v1/commitments', dan, later, { 'idempotency-key': next })).statusCode).toBe(201);
    const { rows } = await t.database.pool.query(
      'select body from http_idempotency where user_id = $1 and key = $2',
      [dan.userId, next],
    );
    expect(rows).toEqual([{ body: null }]);
    expect((await post('/v1/commitments', dan, later, { 'idempotency-key': next })).statusCode).toBe(410);
  });

  /** Makes a key's record look as a process killed mid-request leaves it: claimed, no response, old. */
  const abandon = (key: string) =>
    t.database.pool.query(
      `update http_idempotency set status = null, body = null, headers = null,
         created_at = now() - make_interval(secs => $3) where user_id = $1 and key = $2`,
      [ana.userId, key, ABANDONED_AFTER_MS / 1000 + 1],
    );

  test('a request abandoned before it appended is run by a retry once ABANDONED_AFTER_MS has passed', async () => {
    const key = `abandoned-${Date.now()}`;
    const body = { type: 'personal', title: 'abandoned before appending' };
    await t.database.pool.query(
      'insert into http_idempotency (user_id, key, request_hash) values ($1, $2, $3)',
      [ana.userId, key, await requestHashOf(body)],
    );
    await abandon(key);
    const retry = await post('/v1/commitments', ana, body, { 'idempotency-key': key });
    expect(retry.statusCode).toBe(201);
    expect(await entriesTitled('abandoned before appending')).toHaveLength(1);
    const replayed = await post('/v1/commitments', ana, body, { 'idempotency-key': key });
    expect(replayed.headers['idempotency-replayed']).toBe('true');
    expect(replayed.json()).toEqual(retry.json());
  });

  test('a request abandoned after it appended: a retry answers its receipt and applies nothing again', async () => {
    const key = `appended-${Date.now()}`;
    const body = { type: 'personal', title: 'abandoned after appending' };
    const first = await post('/v1/commitments', ana, body, { 'idempotency-key': key });
    await abandon(key);
    const retry = await post('/v1/commitments', ana, body, { 'idempotency-key': key });
    expect(retry.statusCode).toBe(201);
    expect(retry.json()).toEqual(first.json());
    expect(await entriesTitled('abandoned after appending')).toHaveLength(1);

    // A command on an existing commitment: not decided again on the state that already holds it.
    const { commitmentId } = first.json() as { commitmentId: string };
    const renameKey = `renamed-${Date.now()}`;
    const rename = { title: 'renamed once' };
    const url = `/v1/commitments/${commitmentId}/update`;
    const renamed = await post(url, ana, rename, { 'idempotency-key': renameKey });
    expect(renamed.statusCode).toBe(200);
    await abandon(renameKey);
    const again = await post(url, ana, rename, { 'idempotency-key': renameKey });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(renamed.json());
    const stream = await readStream(t.database.db, t.deps.ledger, `commitment-${commitmentId}`);
    expect(stream.map((entry) => entry.version)).toEqual([1, 2]);
  });

  test('keys are per user', async () => {
    const key = `shared-${Date.now()}`;
    expect(
      (await post('/v1/commitments', ana, { type: 'personal', title: 'Ana' }, { 'idempotency-key': key }))
        .statusCode,
    ).toBe(201);
    expect(
      (await post('/v1/commitments', ben, { type: 'personal', title: 'Ben' }, { 'idempotency-key': key }))
        .statusCode,
    ).toBe(201);
  });
});

describe('races', () => {
  test('two accepts of the last invitation: both land, the commitment activates once', async () => {
    const id = await create(ana);
    await post(`/v1/commitments/${id}/invite`, ana, { userId: ben.userId, role: 'participant' });
    await post(`/v1/commitments/${id}/invite`, ana, { userId: cy.userId, role: 'witness' });
    await post(`/v1/commitments/${id}/propose`, ana);
    const [a, b] = await Promise.all([
      post(`/v1/commitments/${id}/accept`, ben),
      post(`/v1/commitments/${id}/accept`, cy),
    ]);
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    const types = (await readStream(t.database.db, t.deps.ledger, `commitment-${id}`)).map((e) => e.type);
    expect(types.filter((type) => type === 'CommitmentActivated')).toHaveLength(1);
    expect(types.at(-1)).toBe('CommitmentActivated');
  });

  test('the same party accepting twice at once: one success, one 409, nothing lost', async () => {
    const id = await create(ana);
    await post(`/v1/commitments/${id}/invite`, ana, { userId: ben.userId, role: 'participant' });
    await post(`/v1/commitments/${id}/invite`, ana, { userId: cy.userId, role: 'witness' });
    await post(`/v1/commitments/${id}/propose`, ana);
    const results = await Promise.all([
      post(`/v1/commitments/${id}/accept`, ben),
      post(`/v1/commitments/${id}/accept`, ben),
    ]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
  });

  test('update racing propose with If-Match: one wins, the other gets 412', async () => {
    const id = await create(ana);
    await post(`/v1/commitments/${id}/invite`, ana, { userId: ben.userId, role: 'participant' });
    const version = { 'if-match': '"2"' };
    const [update, propose] = await Promise.all([
      post(`/v1/commitments/${id}/update`, ana, { title: 'Changed' }, version),
      post(`/v1/commitments/${id}/propose`, ana, {}, version),
    ]);
    expect([update.statusCode, propose.statusCode].sort()).toEqual([200, 412]);
    expect((await readStream(t.database.db, t.deps.ledger, `commitment-${id}`)).length).toBe(3);
  });

  test('update racing propose without If-Match: decided again on the new state, one 409', async () => {
    const id = await create(ana);
    await post(`/v1/commitments/${id}/invite`, ana, { userId: ben.userId, role: 'participant' });
    const [update, propose] = await Promise.all([
      post(`/v1/commitments/${id}/update`, ana, { title: 'Changed' }),
      post(`/v1/commitments/${id}/propose`, ana),
    ]);
    const statuses = [update.statusCode, propose.statusCode];
    // Either order is a valid history: update then propose (both 200), or propose then update (409).
    expect(
      [
        [200, 200],
        [409, 200],
      ].map(String),
    ).toContain(String(statuses));
  });
});

describe('documents', () => {
  function multipart(fields: Record<string, string>, file: { name: string; type: string; content: Buffer }) {
    const boundary = `----connect${Date.now()}`;
    const parts = Object.entries(fields).map(
      ([k, v]) => `--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`,
    );
    const payload = Buffer.concat([
      Buffer.from(parts.join('')),
      Buffer.from(
        `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${file.name}"\r\ncontent-type: ${file.type}\r\n\r\n`,
      ),
      file.content,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
  }

  test('an upload is recorded by its SHA-256, versions by name, and every version downloads with that hash', async () => {
    const id = await create(ana);
    await post(`/v1/commitments/${id}/invite`, ana, { userId: ben.userId, role: 'participant' });
    const v1 = Buffer.from('%PDF-1.7 first version');
    const v2 = Buffer.from('%PDF-1.7 second version, longer');
    const upload = async (content: Buffer) => {
      const form = multipart({ name: 'loan.pdf' }, { name: 'x.pdf', type: 'application/pdf', content });
      return t.app.inject({
        method: 'POST',
        url: `/v1/commitments/${id}/documents`,
        payload: form.payload,
        headers: { ...ana.auth, ...form.headers },
      });
    };
    const first = await upload(v1);
    expect(first.statusCode).toBe(201);
    expect((await upload(v2)).statusCode).toBe(201);
    const attached = (await readStream(t.database.db, t.deps.ledger, `commitment-${id}`)).filter(
      (e) => e.type === 'DocumentAttached',
    );
    expect(attached.map((e) => e.data?.version)).toEqual([1, 2]);
    const documentId = attached[0]?.data?.documentId as string;
    expect(attached[1]?.data?.documentId).toBe(documentId);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(attached.map((e) => e.data?.sha256)).toEqual([sha(v1), sha(v2)]);

    for (const [version, content] of [
      [1, v1],
      [2, v2],
    ] as const) {
      const download = await t.app.inject({
        method: 'GET',
        url: `/v1/commitments/${id}/documents/${documentId}/content?version=${version}`,
        headers: ben.auth,
      });
      expect(download.statusCode).toBe(200);
      expect(download.headers['content-type']).toBe('application/pdf');
      expect(sha(download.rawPayload)).toBe(attached[version - 1]?.data?.sha256);
      expect(download.rawPayload.equals(content)).toBe(true);
    }
    const latest = await t.app.inject({
      method: 'GET',
      url: `/v1/commitments/${id}/documents/${documentId}/content`,
      headers: ana.auth,
    });
    expect(latest.rawPayload.equals(v2)).toBe(true);
    const stranger = await t.app.inject({
      method: 'GET',
      url: `/v1/commitments/${id}/documents/${documentId}/content`,
      headers: eve.auth,
    });
    expect(stranger.statusCode).toBe(404);
  });

  test('an upload over the size limit is a 413 and records nothing', async () => {
    const small = await testApp({ maxDocumentBytes: 1024 });
    try {
      const owner = await signUp(small.app, 'Uploader');
      const created = await small.app.inject({
        method: 'POST',
        url: '/v1/commitments',
        payload: { type: 'personal', title: 'x' },
        headers: owner.auth,
      });
      const id = created.json().commitmentId;
      const form = multipart(
        { name: 'big.bin' },
        { name: 'big.bin', type: 'application/octet-stream', content: Buffer.alloc(4096, 1) },
      );
      const response = await small.app.inject({
        method: 'POST',
        url: `/v1/commitments/${id}/documents`,
        payload: form.payload,
        headers: { ...owner.auth, ...form.headers },
      });
      expect(response.statusCode).toBe(413);
      expect((await readStream(small.database.db, small.deps.ledger, `commitment-${id}`)).length).toBe(1);
    } finally {
      await small.close();
    }
  });
});

/** The entries whose body has this title, opened as the ledger serves them. */
async function entriesTitled(title: string) {
  const entries = await readEntries(t.database.db, t.deps.ledger, 0, 1_000_000);
  return entries.filter((entry) => entry.data?.title === title);
}
