// The first pass reads and maps commitments on a thread of its own, in the very snapshot the
// import reads: what changes in the source meanwhile is left to the dual run.
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { spawnMapper } from '../src/supabase/mapper.ts';
import { openSource } from '../src/supabase/source.ts';
import { type SeededSource, seedSupabaseSource, sourceIds } from './supabase-source.ts';

let seeded: SeededSource;
const ids = sourceIds();

beforeAll(async () => {
  seeded = await seedSupabaseSource(inject('adminUrl'), ids);
}, 60_000);

afterAll(() => seeded?.close());

test('a shared snapshot reads the source as it was when shared, whatever is committed after', async () => {
  const id = seeded.commitments.active as string;
  const first = await openSource(seeded.url);
  try {
    const shared = await first.share();
    await seeded.client.query(`update public.commitments set title = 'Renamed after' where id = $1`, [id]);
    const same = await openSource(shared.url, { snapshot: shared.snapshot });
    const fresh = await openSource(seeded.url);
    try {
      expect((await same.commitments([id]))[0]?.commitment.title).toBe('Commitment active');
      expect((await fresh.commitments([id]))[0]?.commitment.title).toBe('Renamed after');
    } finally {
      await Promise.all([same.close(), fresh.close()]);
    }
  } finally {
    await first.close();
    await seeded.client.query(`update public.commitments set title = 'Commitment active' where id = $1`, [
      id,
    ]);
  }
});

test('the mapping thread maps new streams, hands back the rows of existing ones, and leaves out unknown ids', async () => {
  const active = seeded.commitments.active as string;
  const documents = seeded.commitments.documents as string;
  const source = await openSource(seeded.url);
  const mapper = spawnMapper();
  try {
    mapper.begin({
      snapshot: await source.share(),
      storageDir: seeded.storageDir,
      typeKeys: new Map([
        [ids.types.personal, 'personal'],
        [ids.types.financial, 'financial'],
      ]),
      users: new Set(ids.users.map((user) => user.id)),
    });
    const unknown = '00000000-0000-4000-8000-000000000000';
    const [mapped, rows] = await mapper.map([documents, unknown, active], new Set([active]));
    expect(mapped).toMatchObject({ id: documents, decision: { outcome: 'import' } });
    if (!mapped || !('decision' in mapped) || mapped.decision.outcome !== 'import') return;
    expect(mapped.decision.events[0]?.event.type).toBe('CommitmentDrafted');
    // The exported files were hashed there too.
    expect([...mapped.files.values()].filter((facts) => facts !== null)).toHaveLength(3);
    expect(rows).toMatchObject({ commitment: { id: active } });
  } finally {
    await mapper.close();
    await source.close();
  }
});

test('a thread that cannot read the snapshot fails each request, and stops when closed', async () => {
  const mapper = spawnMapper();
  mapper.begin({
    snapshot: { url: seeded.url, snapshot: 'not-a-snapshot' },
    storageDir: undefined,
    typeKeys: new Map(),
    users: new Set(),
  });
  await expect(mapper.map([seeded.commitments.active as string], new Set())).rejects.toThrow(
    /not a snapshot id/,
  );
  await mapper.close();
});

test('every commitment read through ordered cursors is what reading each by id gives, in commitmentIds order', async () => {
  const source = await openSource(seeded.url);
  try {
    const ids = await source.commitmentIds();
    const byId = await source.commitments(ids);
    // Chunks of two: the rows of most commitments straddle a fetch.
    for (const chunk of [2, 1000]) {
      const every = [];
      for await (const rows of source.everyCommitment(chunk)) every.push(rows);
      expect(every.map((rows) => rows.commitment.id)).toEqual(ids);
      expect(every).toEqual(byId);
    }
    expect(byId.some((rows) => rows.history.length > 2 && rows.parties.length > 1)).toBe(true);
    expect(byId.some((rows) => rows.documents.length > 1)).toBe(true);
    // Its cursors are closed: the snapshot reads on as before.
    expect((await source.commitments([ids[0] as string]))[0]).toEqual(byId[0]);
  } finally {
    await source.close();
  }
});
