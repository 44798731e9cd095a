// A Supabase project (the source schema, in a second database on the same server), seeded with
// users, types and a commitment of every status, plus the bad rows an old project holds: a
// soft-deleted, an anonymous and a duplicate user, an unknown status, an invalid currency, a
// missing file, an orphan party and an unknown role. For the import's and reconcile's tests.
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import pg from 'pg';

export const DAY = 86_400_000;
export const at = (day: number) => new Date(Date.UTC(2025, 0, 1) + day * DAY);

export interface SourceUserPlan {
  id: string;
  email: string;
  password: string;
}

/** The ids the seed uses, made before it runs so a test can name them at its top level. */
export function sourceIds() {
  const users: SourceUserPlan[] = Array.from({ length: 24 }, (_, i) => ({
    id: randomUUID(),
    email: `user${i}@example.test`,
    password: `old password ${i}`,
  }));
  const [ana, ben, cleo] = users as [SourceUserPlan, SourceUserPlan, SourceUserPlan];
  return {
    users,
    ana,
    ben,
    cleo,
    banned: { id: randomUUID(), email: 'banned@example.test', password: 'banned password' },
    deleted: randomUUID(),
    anonymous: randomUUID(),
    duplicate: randomUUID(),
    types: { personal: randomUUID(), financial: randomUUID(), loan: randomUUID() },
  };
}

export type SourceIds = ReturnType<typeof sourceIds>;

export interface SeededSource {
  /** The source database's name and URL. */
  name: string;
  url: string;
  client: pg.Client;
  /** The storage export: documents/<storage_path>. */
  storageDir: string;
  /** Commitment ids by plan name: every status, 'documents', and the bad rows. */
  commitments: Record<string, string>;
  /** The user ids of the orphan party row and of the party with the unknown role "judge". */
  orphanParty: string;
  judge: string;
  close(): Promise<void>;
}

interface Plan {
  name: string;
  status: string;
  history?: 'full' | 'none' | 'contradicting';
  amount?: [number, string];
  documents?: { name: string; version: number; bytes?: string }[];
}

export async function seedSupabaseSource(adminUrl: string, ids: SourceIds): Promise<SeededSource> {
  const { users, ana, ben, cleo, banned, deleted, anonymous, duplicate, types } = ids;
  const storageDir = await mkdtemp(path.join(os.tmpdir(), 'connect-supabase-'));
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const name = `supabase_source_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  await admin.query(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const source = new pg.Client({ connectionString: url.toString() });
  await source.connect();
  await source.query(await readFile(new URL('../src/supabase/source-schema.sql', import.meta.url), 'utf8'));
  const commitments: Record<string, string> = {};

  async function insertUser(
    id: string,
    email: string | null,
    hash: string | null,
    extra: Record<string, unknown> = {},
  ) {
    const columns = [
      'id',
      'email',
      'encrypted_password',
      'email_confirmed_at',
      'created_at',
      'raw_user_meta_data',
      ...Object.keys(extra),
    ];
    const values = [
      id,
      email,
      hash,
      at(0),
      new Date(),
      { full_name: `Name of ${email}` },
      ...Object.values(extra),
    ];
    await source.query(
      `insert into auth.users (${columns.join(', ')}) values (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
      values,
    );
  }

  /** A commitment by ana with ben (participant) and cleo (witness), its rows and a history that leads to `status`. */
  async function seedCommitment(plan: Plan): Promise<string> {
    const id = randomUUID();
    commitments[plan.name] = id;
    const typeId = plan.amount ? types.financial : types.personal;
    const [cents, currency] = plan.amount ?? [null, null];
    const due = at(100);
    const accepted = ['active', 'completed', 'disputed', 'breached'].includes(plan.status);
    await source.query(
      `insert into public.commitments (id, type_id, creator_id, title, description, terms, status, amount_cents, currency, due_date, created_at, updated_at)
       values ($1, $2, $3, $4, 'what it is', '"the terms"', $5, $6, $7, $8, $9, $9)`,
      [id, typeId, ana.id, `Commitment ${plan.name}`, plan.status, cents, currency, due, at(1)],
    );
    const benResponse = accepted || plan.status === 'pending' ? 'accepted' : 'invited';
    const cleoResponse = accepted ? 'accepted' : 'invited';
    await source.query(
      `insert into public.commitment_parties (commitment_id, user_id, role, status, invited_at) values
         ($1, $2, 'creator', 'accepted', $5), ($1, $3, 'participant', $6, $5), ($1, $4, 'witness', $7, $5)`,
      [id, ana.id, ben.id, cleo.id, at(1), benResponse, cleoResponse],
    );
    const history: [string | null, string, object | null, object | null][] = [];
    const created = {
      title: `Commitment ${plan.name}`,
      description: 'what it is',
      terms: 'the terms',
      amount_cents: cents,
      currency,
      due_date: due.toISOString(),
    };
    history.push([ana.id, 'created', null, created]);
    history.push([ana.id, 'party_added', null, { user_id: ben.id, role: 'participant' }]);
    history.push([ana.id, 'party_added', null, { user_id: cleo.id, role: 'witness' }]);
    for (const doc of plan.documents ?? []) {
      const docId = randomUUID();
      const storagePath = `${id}/${doc.name}.v${doc.version}`;
      await source.query(
        `insert into public.commitment_documents (id, commitment_id, name, version, storage_path, mime_type, size_bytes, uploaded_by, created_at)
         values ($1, $2, $3, $4, $5, 'application/pdf', $6, $7, $8)`,
        [docId, id, doc.name, doc.version, storagePath, doc.bytes?.length ?? 10, ana.id, at(2)],
      );
      if (doc.bytes !== undefined) {
        await mkdir(path.join(storageDir, 'documents', id), { recursive: true });
        await writeFile(path.join(storageDir, 'documents', storagePath), doc.bytes);
      }
      history.push([ana.id, 'document_added', null, { id: docId }]);
    }
    const status = (to: string, by = ana.id) => history.push([by, 'status_changed', null, { status: to }]);
    const respond = (userId: string) =>
      history.push([userId, 'party_responded', null, { user_id: userId, status: 'accepted' }]);
    if (plan.status !== 'draft') status('pending');
    if (plan.status === 'pending') respond(ben.id);
    if (accepted) {
      respond(ben.id);
      respond(cleo.id);
      status('active');
    }
    if (plan.status === 'completed') status('completed', ben.id);
    if (plan.status === 'disputed' || plan.status === 'breached') status('disputed', ben.id);
    if (plan.status === 'breached') status('breached', cleo.id);
    if (plan.status === 'cancelled') status('cancelled');
    if (plan.history === 'contradicting') history.splice(3);
    if (plan.history === 'none') history.length = 0;
    for (const [i, [by, change, old, next]] of history.entries()) {
      await source.query(
        `insert into public.commitment_history (commitment_id, changed_by, change_type, old_data, new_data, created_at) values ($1, $2, $3, $4, $5, $6)`,
        [id, by, change, old, next, new Date(at(1).getTime() + i * 60_000)],
      );
    }
    return id;
  }

  for (const [i, user] of users.entries()) {
    // cost 4 keeps the test quick; one $2a$ hash as older Supabase projects have.
    const hash = bcrypt.hashSync(user.password, 4);
    await insertUser(user.id, user.email, i === 1 ? hash.replace('$2b$', '$2a$') : hash);
    await source.query('insert into public.profiles (id, display_name) values ($1, $2)', [
      user.id,
      `User ${i}`,
    ]);
  }
  await insertUser(banned.id, banned.email, bcrypt.hashSync(banned.password, 4), {
    banned_until: new Date(Date.now() + 30 * DAY),
  });
  await insertUser(deleted, 'deleted@example.test', null, { deleted_at: at(5) });
  await insertUser(anonymous, null, null, { is_anonymous: true });
  await insertUser(duplicate, 'USER3@example.test', bcrypt.hashSync('x', 4));
  await source.query(
    `insert into auth.identities (provider_id, user_id, identity_data, provider, created_at) values ($1, $2, $3, 'google', $4)`,
    ['google-subject-1', ben.id, { sub: 'google-subject-1', email: ben.email, email_verified: true }, at(0)],
  );
  await source.query(
    `insert into public.commitment_types (id, name, config, created_at) values
       ($1, 'personal', '{}', $4), ($2, 'financial', '{"requires_amount": true, "requires_due_date": true}', $4),
       ($3, 'Loan', '{"min_witnesses": 1, "colour": "red"}', $4)`,
    [types.personal, types.financial, types.loan, at(0)],
  );
  for (const status of ['draft', 'pending', 'active', 'completed', 'disputed', 'breached', 'cancelled'])
    await seedCommitment({ name: status, status });
  await seedCommitment({
    name: 'documents',
    status: 'active',
    amount: [125_000, 'EUR'],
    documents: [
      { name: 'contract.pdf', version: 1, bytes: 'first draft of the contract' },
      { name: 'contract.pdf', version: 2, bytes: 'signed contract' },
      { name: 'annex.pdf', version: 1, bytes: 'annex' },
    ],
  });
  await seedCommitment({ name: 'no-history', status: 'active', history: 'none' });
  await seedCommitment({ name: 'contradicting', status: 'active', history: 'contradicting' });
  await seedCommitment({ name: 'unknown-status', status: 'archived' });
  await seedCommitment({ name: 'bad-currency', status: 'draft', amount: [500, 'ZZZ'] });
  await seedCommitment({
    name: 'missing-file',
    status: 'draft',
    documents: [
      { name: 'lost.pdf', version: 1 },
      { name: 'kept.pdf', version: 1, bytes: 'kept' },
    ],
  });
  const orphan = await seedCommitment({ name: 'orphan-party', status: 'draft' });
  // An orphan row, as a project whose foreign keys were once off may hold.
  const orphanParty = randomUUID();
  await source.query('set session_replication_role = replica');
  await source.query(
    `insert into public.commitment_parties (commitment_id, user_id, role, status) values ($1, $2, 'participant', 'invited')`,
    [orphan, orphanParty],
  );
  await source.query('set session_replication_role = origin');
  const judge = (users[5] as SourceUserPlan).id;
  await source.query(
    `insert into public.commitment_parties (commitment_id, user_id, role, status) values ($1, $2, 'judge', 'invited')`,
    [orphan, judge],
  );

  return {
    name,
    url: url.toString(),
    client: source,
    storageDir,
    commitments,
    orphanParty,
    judge,
    close: async () => {
      await source.end();
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
      await rm(storageDir, { recursive: true, force: true });
    },
  };
}
