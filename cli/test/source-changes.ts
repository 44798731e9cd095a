// What the dual-run tests change in a seeded Supabase source, as the Supabase app would (rows and
// their history in one transaction), and how they wait for each change to arrive in Connect.
import { randomUUID } from 'node:crypto';
import { loadCommitment } from '@connect/command';
import type { Commitment } from '@connect/domain';
import bcrypt from 'bcryptjs';
import { expect } from 'vitest';
import type { Stack } from '../../test/support/stack.ts';
import type { SeededSource, SourceIds } from './supabase-source.ts';

/** A row of the source's commitment_history, as the app writes one beside each change. */
export const historyRow = (seeded: SeededSource, id: string, by: string, change: string, next: object) =>
  seeded.client.query(
    'insert into public.commitment_history (commitment_id, changed_by, change_type, new_data) values ($1, $2, $3, $4)',
    [id, by, change, next],
  );

/** A new commitment of ana's, proposed to ben, with its history, in one transaction: its id. */
export async function proposeNewCommitment(seeded: SeededSource, { ana, ben, types }: SourceIds) {
  const { client } = seeded;
  const id = randomUUID();
  await client.query('begin');
  await client.query(
    `insert into public.commitments (id, type_id, creator_id, title, description, terms, status)
     values ($1, $2, $3, 'Paint the fence', 'both sides', '"by Friday"', 'pending')`,
    [id, types.personal, ana.id],
  );
  await client.query(
    `insert into public.commitment_parties (commitment_id, user_id, role, status) values
       ($1, $2, 'creator', 'accepted'), ($1, $3, 'participant', 'invited')`,
    [id, ana.id, ben.id],
  );
  await historyRow(seeded, id, ana.id, 'created', {
    title: 'Paint the fence',
    description: 'both sides',
    terms: 'by Friday',
  });
  await historyRow(seeded, id, ana.id, 'party_added', { user_id: ben.id, role: 'participant' });
  await historyRow(seeded, id, ana.id, 'status_changed', { status: 'pending' });
  await client.query('commit');
  return id;
}

/** `userId` accepts their invitation to `id`: the response and its history row. */
export async function acceptInvitation(seeded: SeededSource, id: string, userId: string) {
  await seeded.client.query(
    `update public.commitment_parties set status = 'accepted', responded_at = now() where commitment_id = $1 and user_id = $2`,
    [id, userId],
  );
  await historyRow(seeded, id, userId, 'party_responded', { user_id: userId, status: 'accepted' });
}

/** ana, its creator, gives `id` new terms ("new terms"), with the history row. */
export async function changeTerms(seeded: SeededSource, id: string, { ana }: SourceIds) {
  await seeded.client.query(
    `update public.commitments set terms = '"new terms"', updated_at = now() where id = $1`,
    [id],
  );
  await historyRow(seeded, id, ana.id, 'updated', { terms: 'new terms' });
}

/**
 * A user added to the source, then signing in to Connect with their Supabase password until the
 * follower has brought them over (10 s at most).
 */
export async function newUserSignsIn(seeded: SeededSource, stack: Stack) {
  const newcomer = { id: randomUUID(), email: 'newcomer@example.test', password: 'newcomer password' };
  await seeded.client.query(
    `insert into auth.users (id, email, encrypted_password, email_confirmed_at, created_at, updated_at)
     values ($1, $2, $3, now(), now(), now())`,
    [newcomer.id, newcomer.email, bcrypt.hashSync(newcomer.password, 4)],
  );
  const started = Date.now();
  for (;;) {
    const signIn = await stack.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', email: newcomer.email, password: newcomer.password },
    });
    if (signIn.statusCode === 200) return;
    expect(Date.now() - started).toBeLessThan(10_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Waits (10 s at most) until commitment `id` in `stack` passes `check`; `failed` says what stopped
 * the follower, if anything did: waiting is then pointless.
 */
export async function eventuallyLoaded(
  stack: Stack,
  id: string,
  check: (c: Commitment) => boolean,
  failed: () => unknown = () => undefined,
): Promise<Commitment> {
  const started = Date.now();
  for (;;) {
    const failure = failed();
    if (failure) throw failure;
    const commitment = await loadCommitment(stack.database.db, stack.command.ledger, id);
    if (commitment.exists && check(commitment)) return commitment;
    if (Date.now() - started > 10_000)
      throw new Error(`commitment ${id} never arrived: ${JSON.stringify(commitment)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
