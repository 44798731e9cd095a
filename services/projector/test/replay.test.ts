import { commitmentRowPlace, historyRowPlace } from '@connect/db';
import { commitmentStream } from '@connect/domain';
import { streamKeySubject } from '@connect/ledger';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { PROJECTIONS } from '../src/projections/index.ts';
import { replayProjection } from '../src/replay.ts';

let s: Stack;
let ana: Account;
let ben: Account;
let cat: Account;
const ids: string[] = [];
let last = 0;

async function command(who: Account, url: string, payload: unknown = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload: payload as object, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  last = Math.max(last, receipt.events.at(-1)?.index ?? 0);
  return receipt;
}

const TABLES: Record<string, string> = {
  profiles: 'user_id',
  commitment_types: 'key',
  commitments: 'id',
  commitment_parties: 'commitment_id, user_id',
  commitment_documents: 'commitment_id, document_id, version',
  commitment_history: 'index',
};

/** Where a sealed read-model value lives, for the tables that have one. */
const PLACES: Record<string, (row: Record<string, unknown>) => string> = {
  commitments: (row) => commitmentRowPlace(String(row.id)),
  commitment_history: (row) => historyRowPlace(Number(row.index)),
};

/** Every read-model row, as the owner sees them, sealed values opened (each sealing has its own nonce). */
async function snapshot(): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const [table, key] of Object.entries(TABLES)) {
    const { rows } = await s.database.pool.query(`select * from ${table} order by ${key}`);
    const place = PLACES[table];
    out[table] = place
      ? await Promise.all(
          rows.map(async ({ sealed, ...row }) => {
            if (sealed === null) return { ...row, sealed };
            const id = String(row.id ?? row.commitment_id);
            const subject = streamKeySubject(commitmentStream(id));
            const [opened] = await s.command.ledger.cipher.fields.open([
              { subject, place: place({ ...row }), stored: sealed },
            ]);
            return { ...row, opened };
          }),
        )
      : rows;
  }
  return out;
}

async function projectedTo(index: number): Promise<void> {
  // vi.waitFor rather than expect.poll: this runs in beforeAll too.
  await vi.waitFor(
    async () => {
      const { rows } = await s.database.pool.query<{ n: number }>(
        'select min(last_index)::int as n from projection_checkpoints',
      );
      if ((rows[0]?.n ?? -1) < index) throw new Error(`the projector has not reached ${index}`);
    },
    { timeout: 20_000, interval: 50 },
  );
}

beforeAll(async () => {
  s = await testStack();
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  cat = await signUp(s.app, 'Cat');
  for (let i = 0; i < 25; i++) {
    const id = (
      await command(ana, '/v1/commitments', { type: 'personal', title: `Promise ${i}`, terms: `t${i}` })
    ).commitmentId;
    ids.push(id);
    if (i % 2 === 0) {
      await command(ana, `/v1/commitments/${id}/invite`, { userId: ben.userId, role: 'participant' });
      await command(ana, `/v1/commitments/${id}/propose`);
      if (i % 4 === 0) await command(ben, `/v1/commitments/${id}/accept`);
    } else if (i % 3 === 0) {
      // Invited and removed again: rows written while Cat was a party lose Cat's id.
      await command(ana, `/v1/commitments/${id}/invite`, { userId: cat.userId, role: 'witness' });
      await command(ana, `/v1/commitments/${id}/update`, { description: 'Cat may watch' });
      await command(ana, `/v1/commitments/${id}/remove-party`, { userId: cat.userId });
    } else if (i % 5 === 0) {
      await command(ana, `/v1/commitments/${id}/invite`, { userId: cat.userId, role: 'witness' });
    }
  }
  await projectedTo(last);
});
afterAll(() => s.close());

describe('connect replay', () => {
  it('rebuilds every read model under query load: every row the same, every read answered', async () => {
    const before = await snapshot();
    const expected = new Map<string, string>();
    for (const id of ids) {
      expected.set(
        id,
        (await s.app.inject({ method: 'GET', url: `/v1/commitments/${id}`, headers: ana.auth })).body,
      );
    }

    let stop = false;
    let reads = 0;
    const failures: string[] = [];
    const load = Array.from({ length: 4 }, async (_, worker) => {
      for (let n = worker; !stop; n++) {
        const id = ids[n % ids.length] as string;
        const response = await s.app.inject({
          method: 'GET',
          url: `/v1/commitments/${id}`,
          headers: ana.auth,
        });
        reads++;
        if (response.statusCode !== 200 || response.body !== expected.get(id)) {
          failures.push(`${id}: ${response.statusCode} ${response.body.slice(0, 200)}`);
        }
        const list = await s.app.inject({
          method: 'GET',
          url: '/v1/commitments?limit=100',
          headers: ben.auth,
        });
        if (list.statusCode !== 200 || list.json().items.length !== 13)
          failures.push(`list: ${list.statusCode}`);
      }
    });

    const progress: number[] = [];
    for (const projection of PROJECTIONS) {
      const result = await replayProjection(
        { pool: s.database.pool, origin: s.query.origin, cipher: s.query.cipher },
        projection,
        {
          batchSize: 7,
          onProgress: (p) => progress.push(p.projected),
        },
      );
      expect(result.lastIndex).toBeGreaterThanOrEqual(last);
    }
    stop = true;
    await Promise.all(load);

    expect(failures).toEqual([]);
    expect(reads).toBeGreaterThan(10);
    expect(progress.length).toBeGreaterThan(3);
    expect(await snapshot()).toEqual(before);
    // The same party_ids, which row-level security checks, on every row (none left empty).
    const members = new Set(
      Object.values(before).flatMap((rows) =>
        (rows as { party_ids?: string[] }[]).flatMap((row) =>
          row.party_ids ? [row.party_ids.join(',')] : [],
        ),
      ),
    );
    expect([...members].sort()).toEqual(
      [[ana.userId], [ana.userId, ben.userId].sort(), [ana.userId, cat.userId].sort()]
        .map((ids) => ids.join(','))
        .sort(),
    );
    // The swapped-in tables are protected like the ones they replaced.
    const { rows } = await s.database.pool.query<{ tablename: string }>(
      `select tablename from pg_tables where schemaname = current_schema() and rowsecurity and tablename = any($1)`,
      [Object.keys(TABLES)],
    );
    expect(rows.map((r) => r.tablename).sort()).toEqual(Object.keys(TABLES).sort());
    const leftovers = await s.database.pool.query(
      `select tablename from pg_tables where tablename like '%__replay'`,
    );
    expect(leftovers.rows).toEqual([]);
  });

  it('misses and repeats nothing when commands keep coming during the replay', async () => {
    let writing = true;
    const writer = (async () => {
      let i = 0;
      while (writing) {
        const id = ids[i++ % ids.length] as string;
        await command(ana, `/v1/commitments/${id}/update`, { description: `during replay ${i}` }).catch(
          () => undefined,
        );
      }
    })();
    const commitments = PROJECTIONS.find((p) => p.name === 'commitments');
    if (!commitments) throw new Error('no commitments projection');
    await replayProjection(
      { pool: s.database.pool, origin: s.query.origin, cipher: s.query.cipher },
      commitments,
      { batchSize: 5 },
    );
    writing = false;
    await writer;
    await projectedTo(last);

    const ledger = await s.database.pool.query<{ n: number }>(
      `select count(*)::int as n from ledger_entries where stream ~ '^commitment-[0-9a-f]{8}-'`,
    );
    const history = await s.database.pool.query<{ n: number }>(
      'select count(*)::int as n from commitment_history',
    );
    expect(history.rows[0]?.n).toBe(ledger.rows[0]?.n);
    const versions = await s.database.pool.query<{ id: string; version: number; stream_version: number }>(
      `select c.id, c.version, (select max(version) from ledger_entries e where e.stream = 'commitment-' || c.id) as stream_version
         from commitments c`,
    );
    for (const row of versions.rows) expect(row.version).toBe(row.stream_version);
  });
});
