import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { readAs } from '../src/reader.ts';

let s: Stack;
let ana: Account;
let ben: Account;
let cat: Account;

async function command(who: Account, url: string, payload: unknown = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload: payload as object, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  return response.json() as { commitmentId: string; version: number; events: { index: number }[] };
}

const lastIndex = (receipt: { events: { index: number }[] }) => receipt.events.at(-1)?.index as number;

async function read(who: Account, url: string, minIndex?: number) {
  return s.app.inject({
    method: 'GET',
    url,
    headers: { ...who.auth, ...(minIndex === undefined ? {} : { 'connect-min-index': String(minIndex) }) },
  });
}

let shared: string;
let anasOwn: string;
let lastWrite: number;

beforeAll(async () => {
  s = await testStack({ minIndexWaitMs: 400 });
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  cat = await signUp(s.app, 'Cat');
  shared = (await command(ana, '/v1/commitments', { type: 'personal', title: 'Paint the fence' }))
    .commitmentId;
  await command(ana, `/v1/commitments/${shared}/invite`, { userId: ben.userId, role: 'participant' });
  await command(ana, `/v1/commitments/${shared}/propose`);
  const accepted = await command(ben, `/v1/commitments/${shared}/accept`);
  anasOwn = (
    await command(ana, '/v1/commitments', {
      type: 'financial',
      title: 'Repay the loan',
      amount: { minor: 5000, currency: 'EUR' },
      dueAt: '2027-01-01T00:00:00.000Z',
    })
  ).commitmentId;
  lastWrite = Math.max(lastIndex(accepted), 0);
  const again = await command(ana, `/v1/commitments/${anasOwn}/update`, { description: 'By new year' });
  lastWrite = lastIndex(again);
});
afterAll(() => s.close());

describe('reading your own writes', () => {
  it('Connect-Min-Index waits until the write is projected; every response says its index', async () => {
    const receipt = await command(cat, '/v1/commitments', { type: 'personal', title: 'Water the plants' });
    const response = await read(cat, `/v1/commitments/${receipt.commitmentId}`, lastIndex(receipt));
    expect(response.statusCode).toBe(200);
    expect(Number(response.headers['connect-index'])).toBeGreaterThanOrEqual(lastIndex(receipt));
    expect(response.headers.etag).toBe('"1"');
    expect(response.json()).toMatchObject({
      id: receipt.commitmentId,
      title: 'Water the plants',
      status: 'draft',
    });
  });

  /** The caller's commitments over REST or GraphQL, with this Connect-Min-Index. */
  const readWith = (api: 'REST' | 'GraphQL', minIndex: string) =>
    s.app.inject({
      ...(api === 'REST'
        ? { method: 'GET', url: '/v1/commitments' }
        : { method: 'POST', url: '/graphql', payload: { query: '{ commitments { edges { cursor } } }' } }),
      headers: { ...ana.auth, 'connect-min-index': minIndex },
    });

  it.each(['REST', 'GraphQL'] as const)(
    'answers 503 with Retry-After when the index is not reached within the bound (%s)',
    async (api) => {
      const started = Date.now();
      const response = await readWith(api, '10000000');
      expect(response.statusCode).toBe(503);
      expect(response.headers['retry-after']).toBe('1');
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    },
  );

  it.each(['REST', 'GraphQL'] as const)(
    'refuses a malformed Connect-Min-Index, naming the header (%s)',
    async (api) => {
      const response = await readWith(api, 'soon');
      expect(response.statusCode).toBe(400);
      expect(response.json().errors[0].path).toBe('header.connect-min-index');
    },
  );

  it('says its index on a GraphQL document refused before it runs, and refuses a malformed header there too', async () => {
    const refused = (minIndex: string) =>
      s.app.inject({
        method: 'POST',
        url: '/graphql',
        payload: { query: '{ noSuchField }' },
        headers: { ...ana.auth, 'connect-min-index': minIndex },
      });
    const invalid = await refused('1');
    expect(invalid.json().errors[0].message).toContain('noSuchField');
    expect(Number(invalid.headers['connect-index'])).toBeGreaterThanOrEqual(1);
    const malformed = await refused('soon');
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().errors[0].path).toBe('header.connect-min-index');
  });
});

describe('REST reads', () => {
  it('gets a commitment with its parties (named) and answers 304 to a matching If-None-Match', async () => {
    const response = await read(ben, `/v1/commitments/${shared}`, lastWrite);
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ status: 'active', version: 5, amount: null, overdue: false, documents: [] });
    expect(body.parties).toEqual([
      { userId: ana.userId, displayName: 'Ana', role: 'creator', response: 'accepted' },
      { userId: ben.userId, displayName: 'Ben', role: 'participant', response: 'accepted' },
    ]);
    const cached = await s.app.inject({
      method: 'GET',
      url: `/v1/commitments/${shared}`,
      headers: { ...ben.auth, 'if-none-match': response.headers.etag as string },
    });
    expect(cached.statusCode).toBe(304);
  });

  it('answers 404 for a commitment the caller is not party to, and 401 without a token', async () => {
    const hidden = await read(cat, `/v1/commitments/${shared}`, lastWrite);
    expect(hidden.statusCode).toBe(404);
    expect((await read(cat, `/v1/commitments/${shared}/history`, lastWrite)).statusCode).toBe(404);
    const anonymous = await s.app.inject({ method: 'GET', url: `/v1/commitments/${shared}` });
    expect(anonymous.statusCode).toBe(401);
  });

  it('lists only the caller’s commitments, with filters', async () => {
    const ids = async (who: Account, query = '') =>
      ((await read(who, `/v1/commitments${query}`, lastWrite)).json().items as { id: string }[]).map(
        (c) => c.id,
      );
    expect(await ids(ana)).toEqual([anasOwn, shared]);
    expect(await ids(ben)).toEqual([shared]);
    expect(await ids(ana, '?status=active')).toEqual([shared]);
    expect(await ids(ana, '?status=draft,proposed')).toEqual([anasOwn]);
    expect(await ids(ben, '?role=participant')).toEqual([shared]);
    expect(await ids(ben, '?role=creator')).toEqual([]);
    expect(await ids(ana, '?type=financial')).toEqual([anasOwn]);
    expect(await ids(ana, '?dueBefore=2027-06-01T00:00:00Z')).toEqual([anasOwn]);
    expect(await ids(ana, '?dueAfter=2027-06-01T00:00:00Z')).toEqual([]);
    const financial = (await read(ana, '/v1/commitments?type=financial', lastWrite)).json().items[0];
    expect(financial).toMatchObject({ amount: { minor: 5000, currency: 'EUR' }, description: 'By new year' });
  });

  it('names each invalid filter', async () => {
    const response = await read(ana, '/v1/commitments?status=sleeping&limit=0&dueBefore=tomorrow&colour=red');
    expect(response.statusCode).toBe(400);
    const paths = (response.json().errors as { path: string }[]).map((e) => e.path).sort();
    expect(paths).toEqual(expect.arrayContaining(['query.dueBefore', 'query.limit', 'query.status.0']));
    const cursor = await read(ana, '/v1/commitments?cursor=bm9wZQ');
    expect(cursor.json().errors[0].path).toBe('query.cursor');
  });

  it('pages through with a cursor in a stable order', async () => {
    const dan = await signUp(s.app, 'Dan');
    let last = 0;
    for (let i = 0; i < 7; i++) {
      last = lastIndex(await command(dan, '/v1/commitments', { type: 'personal', title: `Task ${i}` }));
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=3&cursor=${cursor}` : '?limit=3';
      const page = (await read(dan, `/v1/commitments${query}`, last)).json();
      seen.push(...page.items.map((c: { title: string }) => c.title));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['Task 6', 'Task 5', 'Task 4', 'Task 3', 'Task 2', 'Task 1', 'Task 0']);
  });

  it('gives the history: one row per event, readable, with its index and leaf hash', async () => {
    const response = await read(ben, `/v1/commitments/${shared}/history`, lastWrite);
    expect(response.statusCode).toBe(200);
    const events = response.json().events;
    expect(events.map((e: { summary: string }) => e.summary)).toEqual([
      'Ana drafted "Paint the fence" (personal)',
      'Ana invited Ben as participant',
      'Ana proposed the commitment',
      'Ben accepted',
      'Everyone accepted: the commitment is active',
    ]);
    const entry = await s.database.db
      .selectFrom('ledger_entries')
      .select(['index', 'leaf_hash'])
      .where('index', '=', events[1].index)
      .executeTakeFirstOrThrow();
    expect(events[1].leafHash).toBe(Buffer.from(entry.leaf_hash).toString('base64'));
    expect(events[1]).toMatchObject({
      version: 2,
      type: 'PartyInvited',
      actor: { userId: ana.userId, displayName: 'Ana' },
    });
  });

  it('lists the commitment types', async () => {
    const response = await read(cat, '/v1/commitment-types', lastWrite);
    expect(response.json().items.map((t: { key: string }) => t.key)).toEqual([
      'business',
      'financial',
      'personal',
    ]);
  });

  it('lists them still after a migration adds a column to their table, and after it drops it', async () => {
    const keys = async () => {
      const response = await read(cat, '/v1/commitment-types');
      expect(response.statusCode).toBe(200);
      return response.json().items.map((t: { key: string }) => t.key);
    };
    // Each read is prepared on the connection it runs on: these are read before the change.
    await keys();
    try {
      await s.database.pool.query('alter table commitment_types add column noted_later text');
      for (let i = 0; i < 3; i++) expect(await keys()).toEqual(['business', 'financial', 'personal']);
    } finally {
      await s.database.pool.query('alter table commitment_types drop column if exists noted_later');
    }
    expect(await keys()).toEqual(['business', 'financial', 'personal']);
  });
});

describe('row-level security', () => {
  const tables = [
    'commitments',
    'commitment_parties',
    'commitment_documents',
    'commitment_history',
    'profiles',
    'commitment_types',
    'projection_checkpoints',
  ];

  /** Hand-written SQL as connect_reader, with or without a user set (and connect.admin). */
  async function rowsAs(
    userId: string | null,
    query: string,
    admin = false,
  ): Promise<Record<string, unknown>[]> {
    const client = await s.database.pool.connect();
    try {
      await client.query('begin');
      await client.query("select set_config('role', 'connect_reader', true)");
      if (userId) await client.query("select set_config('connect.user_id', $1, true)", [userId]);
      if (admin) await client.query("select set_config('connect.admin', 'on', true)");
      const { rows } = await client.query(query);
      return rows;
    } finally {
      await client.query('rollback').catch(() => undefined);
      client.release();
    }
  }

  it('shows nothing without a user', async () => {
    await read(ana, '/v1/commitments', lastWrite);
    for (const table of tables) expect(await rowsAs(null, `select * from ${table}`), table).toEqual([]);
    const owner = await s.database.db
      .selectFrom('commitments')
      .select(sql<number>`count(*)::int`.as('n'))
      .executeTakeFirstOrThrow();
    expect(owner.n).toBeGreaterThan(2);
  });

  it('shows a user only the commitments they are party to, whatever the SQL', async () => {
    const commitments = await rowsAs(ben.userId, 'select id from commitments');
    expect(commitments.map((r) => r.id)).toEqual([shared]);
    const parties = await rowsAs(ben.userId, 'select distinct commitment_id from commitment_parties');
    expect(parties.map((r) => r.commitment_id)).toEqual([shared]);
    const history = await rowsAs(ben.userId, 'select distinct commitment_id from commitment_history');
    expect(history.map((r) => r.commitment_id)).toEqual([shared]);
    const joined = await rowsAs(
      cat.userId,
      `select c.id from commitments c join commitment_parties p on p.commitment_id = c.id where c.id = '${shared}'`,
    );
    expect(joined).toEqual([]);
    const profiles = await rowsAs(cat.userId, 'select user_id from profiles');
    expect(profiles.length).toBeGreaterThanOrEqual(3); // display names are a directory of signed-in users
  });

  it('shows an admin or auditor (connect.admin) every commitment, and nothing without a user', async () => {
    const all = await s.database.pool.query('select id from commitments order by id');
    for (const table of ['commitments', 'commitment_parties', 'commitment_history']) {
      const key = table === 'commitments' ? 'id' : 'commitment_id';
      const seen = await rowsAs(cat.userId, `select distinct ${key} as id from ${table} order by 1`, true);
      expect(seen, table).toEqual(all.rows);
      expect(await rowsAs(null, `select * from ${table}`, true), table).toEqual([]);
    }
  });

  it('runs the query service’s statements only with a caller, set for that statement alone', async () => {
    const reader = s.query.reader;
    if (!reader) throw new Error('the stack gives the query service a reader');
    await expect(reader.selectFrom('commitments').select('id').execute()).rejects.toThrow(/readAs/);
    const seen = async (who: Account) =>
      readAs(reader, { userId: who.userId, isAdmin: false }, async (db) => {
        const { rows } = await sql<{
          me: string;
          role: string;
        }>`select current_setting('connect.user_id') as me, current_user as role`.execute(db);
        const ids = await db.selectFrom('commitments').select('id').execute();
        return { ...rows[0], count: ids.length };
      });
    const [asBen, asCat] = await Promise.all([seen(ben), seen(cat)]);
    expect(asBen).toEqual({ me: ben.userId, role: 'connect_reader', count: 1 });
    expect(asCat).toMatchObject({ me: cat.userId, role: 'connect_reader' });
  });

  it('can only read: no writes, no way around the policies', async () => {
    await expect(rowsAs(ana.userId, `delete from commitments where id = '${shared}'`)).rejects.toThrow(
      /permission denied/,
    );
    await expect(rowsAs(ana.userId, 'select * from ledger_entries')).rejects.toThrow(/permission denied/);
    await expect(rowsAs(ana.userId, 'select * from users')).rejects.toThrow(/permission denied/);
    await expect(
      rowsAs(ana.userId, 'set local row_security = off; select * from commitments'),
    ).rejects.toThrow(/row-level security/);
    const [role] = await rowsAs(
      null,
      "select rolbypassrls, rolsuper from pg_roles where rolname = 'connect_reader'",
    );
    expect(role).toEqual({ rolbypassrls: false, rolsuper: false });
  });
});

describe('amendments and evidence in the view', () => {
  let eve: Account;
  let fay: Account;
  let id: string;

  async function view(who: Account, minIndex: number) {
    const response = await read(who, `/v1/commitments/${id}`, minIndex);
    expect(response.statusCode).toBe(200);
    return response.json();
  }

  async function graphqlView(who: Account, minIndex: number) {
    const response = await s.app.inject({
      method: 'POST',
      url: '/graphql',
      headers: { ...who.auth, 'connect-min-index': String(minIndex) },
      payload: {
        query: `query One($id: ID!) { commitment(id: $id) {
          pendingAmendment { amendmentId proposedBy proposedByName changes { terms dueAt } changedFields acceptedBy }
          documents { name purpose attachedBy }
          history { type changes summary }
        } }`,
        variables: { id },
      },
    });
    const body = response.json();
    expect(body.errors).toBeUndefined();
    return body.data.commitment;
  }

  beforeAll(async () => {
    eve = await signUp(s.app, 'Eve');
    fay = await signUp(s.app, 'Fay');
    id = (
      await command(eve, '/v1/commitments', {
        type: 'personal',
        title: 'Lend Fay 200 EUR',
        terms: 'Back by June',
      })
    ).commitmentId;
    await command(eve, `/v1/commitments/${id}/invite`, { userId: fay.userId, role: 'participant' });
    await command(eve, `/v1/commitments/${id}/propose`);
    await command(fay, `/v1/commitments/${id}/accept`);
  });

  it('shows a pending amendment: its id, who proposed it, what it changes, who accepted it', async () => {
    const proposed = await command(eve, `/v1/commitments/${id}/propose-amendment`, {
      changes: { terms: 'Back by July', dueAt: null },
    });
    const rest = await view(fay, lastIndex(proposed));
    expect(rest.terms).toBe('Back by June');
    expect(rest.pendingAmendment).toEqual({
      amendmentId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      proposedBy: eve.userId,
      proposedByName: 'Eve',
      changes: { terms: 'Back by July', dueAt: null },
      acceptedBy: [eve.userId],
    });
    const graph = await graphqlView(fay, lastIndex(proposed));
    expect(graph.pendingAmendment).toEqual({
      ...rest.pendingAmendment,
      changes: { terms: 'Back by July', dueAt: null },
      changedFields: ['terms', 'dueAt'],
    });
    // GraphQL's history carries the same changes as REST's.
    const history = (await read(fay, `/v1/commitments/${id}/history`, lastIndex(proposed))).json().events;
    expect(graph.history.map((e: { changes: unknown }) => e.changes)).toEqual(
      history.map((e: { changes: unknown }) => e.changes),
    );
    expect(graph.history.at(-1)).toMatchObject({
      type: 'AmendmentProposed',
      changes: { amendmentId: rest.pendingAmendment.amendmentId, changes: { terms: 'Back by July' } },
    });

    const applied = await command(fay, `/v1/commitments/${id}/accept-amendment`, {
      amendmentId: rest.pendingAmendment.amendmentId,
    });
    const after = await view(eve, lastIndex(applied));
    expect(after).toMatchObject({ terms: 'Back by July', dueAt: null, pendingAmendment: null });
  });

  it('shows evidence as such beside the terms, and the history says it is evidence', async () => {
    const boundary = '----connectreads';
    const uploaded = await s.app.inject({
      method: 'POST',
      url: `/v1/commitments/${id}/documents`,
      payload: Buffer.from(
        `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="receipt.txt"\r\ncontent-type: text/plain\r\n\r\npaid\r\n--${boundary}--\r\n`,
      ),
      headers: { ...fay.auth, 'content-type': `multipart/form-data; boundary=${boundary}` },
    });
    expect(uploaded.statusCode).toBe(201);
    const at = lastIndex(uploaded.json());
    const rest = await view(eve, at);
    expect(rest.documents).toEqual([
      expect.objectContaining({
        name: 'receipt.txt',
        purpose: 'evidence',
        attachedBy: fay.userId,
        version: 1,
      }),
    ]);
    const graph = await graphqlView(eve, at);
    expect(graph.documents).toEqual([{ name: 'receipt.txt', purpose: 'evidence', attachedBy: fay.userId }]);
    expect(graph.history.at(-1).summary).toBe('Fay attached receipt.txt as evidence (version 1)');
  });
});
