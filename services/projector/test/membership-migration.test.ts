// Migration 024 on a database that already has read models: party_ids is filled from the parties
// table, in the order the projector writes it (so a replay changes nothing), and the policies
// that check it show connect_reader the same rows as before.
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MIGRATIONS_DIR, migrate, migrationFiles } from '@connect/db';
import { initialState } from '@connect/domain';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { partyIdsOf } from '../src/projections/commitments.ts';

const MIGRATION = '024_indexed_membership.sql';
const adminUrl = inject('adminUrl');
const name = `connect_test_${randomBytes(6).toString('hex')}`;
let pool: pg.Pool;
let before: string;

async function onServer(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  await client.query(sql).finally(() => client.end());
}

beforeAll(async () => {
  await onServer(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  before = await mkdtemp(path.join(os.tmpdir(), 'connect-migrations-'));
  for (const file of await migrationFiles()) {
    if (file < MIGRATION) await copyFile(path.join(MIGRATIONS_DIR, file), path.join(before, file));
  }
  await migrate(pool, before);
});
afterAll(async () => {
  await pool?.end();
  await onServer(`drop database if exists ${name} with (force)`);
  await rm(before, { recursive: true, force: true });
});

// Ids that sort differently by locale and by code unit.
const users = ['b-user', 'B_user', 'a.user', 'a-user', 'Zed'];
const shared = randomUUID();
const alone = randomUUID();

async function insertReadModels(): Promise<void> {
  for (const [id, parties] of [
    [shared, users],
    [alone, ['Zed']],
  ] as const) {
    await pool.query(
      `insert into commitments (id, type, title, description, terms, status, overdue, version, created_at, updated_at, last_index, state)
       values ($1, 'personal', 'T', '', '', 'draft', false, 1, now(), now(), 0, '{}')`,
      [id],
    );
    for (const [i, userId] of parties.entries()) {
      await pool.query(
        `insert into commitment_parties (commitment_id, user_id, role, response, status, type, created_at)
         values ($1, $2, $3, 'accepted', 'draft', 'personal', now())`,
        [id, userId, i === 0 ? 'creator' : 'participant'],
      );
    }
    await pool.query(
      `insert into commitment_documents (commitment_id, document_id, version, name, media_type, size, sha256, latest)
       values ($1, $2, 1, 'a.txt', 'text/plain', 1, 'x', true)`,
      [id, randomUUID()],
    );
    await pool.query(
      `insert into commitment_history (index, commitment_id, version, event_type, recorded_at, changes, leaf_hash)
       values ((select coalesce(max(index), 0) + 1 from commitment_history), $1, 1, 'CommitmentDrafted', now(), '{}', '\\x00')`,
      [id],
    );
  }
}

/** Rows of each read-model table as connect_reader sees them for `userId`. */
async function seenBy(userId: string): Promise<Record<string, number>> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query("select set_config('role', 'connect_reader', true)");
    await client.query("select set_config('connect.user_id', $1, true)", [userId]);
    const out: Record<string, number> = {};
    for (const table of ['commitments', 'commitment_parties', 'commitment_documents', 'commitment_history']) {
      const { rows } = await client.query<{ n: number }>(`select count(*)::int as n from ${table}`);
      out[table] = rows[0]?.n ?? -1;
    }
    return out;
  } finally {
    await client.query('rollback');
    client.release();
  }
}

describe('migration 024 on existing read models', () => {
  it('fills party_ids as the projector would, and the policies show the same rows', async () => {
    await insertReadModels();
    const seen = { zed: await seenBy('Zed'), a: await seenBy('a.user'), stranger: await seenBy('nobody') };
    await copyFile(path.join(MIGRATIONS_DIR, MIGRATION), path.join(before, MIGRATION));
    await migrate(pool, before);

    const projected = partyIdsOf({
      ...initialState(shared),
      parties: users.map((userId) => ({ userId, role: 'participant', response: 'accepted' })),
    } as ReturnType<typeof initialState>);
    for (const table of ['commitments', 'commitment_parties', 'commitment_documents', 'commitment_history']) {
      const key = table === 'commitments' ? 'id' : 'commitment_id';
      const { rows } = await pool.query<{ id: string; party_ids: string[] }>(
        `select distinct ${key} as id, party_ids from ${table} order by 1`,
      );
      const byId = new Map(rows.map((row) => [row.id, row.party_ids]));
      expect(rows, table).toHaveLength(2);
      expect(byId.get(shared), table).toEqual(projected);
      expect(byId.get(alone), table).toEqual(['Zed']);
    }
    expect({ zed: await seenBy('Zed'), a: await seenBy('a.user'), stranger: await seenBy('nobody') }).toEqual(
      seen,
    );
    expect(seen.a).toEqual({
      commitments: 1,
      commitment_parties: users.length,
      commitment_documents: 1,
      commitment_history: 1,
    });
    expect(Object.values(seen.stranger)).toEqual([0, 0, 0, 0]);
  });
});
