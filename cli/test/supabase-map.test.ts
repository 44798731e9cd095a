// The pure mapping of Supabase rows to accounts, type definitions and commitment events.
import { expect, test } from 'vitest';
import { mapCommitment } from '../src/supabase/map-commitments.ts';
import { mapType } from '../src/supabase/map-types.ts';
import { mapUsers } from '../src/supabase/map-users.ts';
import type { SourceCommitmentRows, SourceHistory, SourceUser } from '../src/supabase/source.ts';

const ana = '00000000-0000-4000-8000-00000000000a';
const ben = '00000000-0000-4000-8000-00000000000b';
const id = '00000000-0000-4000-8000-0000000000c1';
const typeId = '00000000-0000-4000-8000-0000000000f1';
const t0 = new Date('2025-01-01T00:00:00Z');
const ctx = { typeKeys: new Map([[typeId, 'personal']]), users: new Set([ana, ben]), files: new Map() };

function rows(status: string, history: [string, object][], benResponse = 'accepted'): SourceCommitmentRows {
  return {
    commitment: {
      id,
      type_id: typeId,
      creator_id: ana,
      title: 'Lend the bike',
      description: null,
      terms: null,
      status,
      amount_cents: null,
      currency: null,
      due_date: null,
      created_at: t0,
      updated_at: t0,
    },
    parties: [
      {
        commitment_id: id,
        user_id: ben,
        role: 'participant',
        status: benResponse,
        invited_at: t0,
        responded_at: null,
      },
    ],
    documents: [],
    history: history.map(
      ([change_type, new_data], i): SourceHistory => ({
        id: String(i + 1),
        commitment_id: id,
        changed_by: change_type === 'party_responded' ? ben : ana,
        change_type,
        old_data: null,
        new_data: new_data as Record<string, unknown>,
        created_at: new Date(t0.getTime() + i * 1000),
      }),
    ),
  };
}

const created: [string, object] = ['created', { title: 'Lend the bike' }];
const invited: [string, object] = ['party_added', { user_id: ben, role: 'participant' }];

test('history rows become the domain events they record, keeping time and actor in meta', () => {
  const decision = mapCommitment(
    rows('completed', [
      created,
      invited,
      ['status_changed', { status: 'pending' }],
      ['party_responded', { user_id: ben, status: 'accepted' }],
      ['status_changed', { status: 'active' }],
      ['status_changed', { status: 'completed' }],
    ]),
    ctx,
  );
  expect(decision.outcome).toBe('import');
  if (decision.outcome !== 'import') return;
  expect(decision.fromHistory).toBe(true);
  expect(decision.events.map((e) => e.event.type)).toEqual([
    'CommitmentDrafted',
    'PartyInvited',
    'CommitmentProposed',
    'InvitationAccepted',
    'CommitmentActivated',
    'FulfilmentConfirmed',
  ]);
  expect(decision.events[3]?.meta).toEqual({
    importedFrom: 'supabase',
    sourceId: 'commitment_history:4',
    originalAt: '2025-01-01T00:00:03.000Z',
    originalActor: ben,
  });
  expect(decision.expected.status).toBe('fulfilled');
});

test('a history that contradicts the row falls back to one CommitmentImported of the row', () => {
  const decision = mapCommitment(rows('pending', [created, invited]), ctx);
  expect(decision.outcome).toBe('import');
  if (decision.outcome !== 'import') return;
  expect(decision.events.map((e) => e.event.type)).toEqual(['CommitmentImported']);
  expect(decision.reasons.join()).toMatch(
    /contradicts the current row \(status: history says "draft", the row "proposed"/,
  );
  expect(decision.expected).toMatchObject({
    status: 'proposed',
    parties: [
      { userId: ana, role: 'creator' },
      { userId: ben, response: 'accepted' },
    ],
  });
});

test('invalid rows fail the commitment; invalid parties are left out and reported', () => {
  expect(mapCommitment(rows('archived', [created]), ctx)).toEqual({
    outcome: 'failed',
    reasons: ['unknown status "archived"'],
  });
  const badAmount = rows('draft', [created]);
  badAmount.commitment.amount_cents = '-5';
  badAmount.commitment.currency = 'EUR';
  expect(mapCommitment(badAmount, ctx)).toEqual({
    outcome: 'failed',
    reasons: ['invalid amount_cents "-5"'],
  });
  const judge = mapCommitment(rows('draft', [created], 'maybe'), ctx);
  expect(judge.outcome === 'import' && judge.reasons[0]).toMatch(
    /party .* left out: unknown response "maybe"/,
  );
});

test('users: duplicate emails, deleted and anonymous users, identities of unconfigured providers', () => {
  const user = (id: string, email: string, extra: Partial<SourceUser> = {}): SourceUser => ({
    id,
    email,
    encrypted_password: null,
    email_confirmed_at: null,
    raw_user_meta_data: null,
    created_at: t0,
    banned_until: null,
    deleted_at: null,
    is_anonymous: false,
    ...extra,
  });
  const decisions = mapUsers(
    [
      user(ana, 'Ana@Example.test'),
      user(ben, 'ana@example.test'),
      user('d', 'd@x.test', { deleted_at: t0 }),
      user('e', 'e@x.test', { is_anonymous: true }),
    ],
    [
      {
        provider_id: '1',
        user_id: ana,
        identity_data: { sub: 's1' },
        provider: 'github',
        last_sign_in_at: null,
        created_at: t0,
      },
    ],
    [{ id: ana, display_name: 'Ana', avatar_url: null }],
    ['google'],
  );
  expect(decisions.map((d) => d.outcome)).toEqual(['import', 'failed', 'skipped', 'skipped']);
  expect(decisions[0]).toMatchObject({
    account: { email: 'ana@example.test', displayName: 'Ana', identities: [] },
    reasons: [expect.stringMatching(/github not linked/)],
  });
});

test('types: config keys mapped, unknown ones reported', () => {
  expect(
    mapType({
      id: typeId,
      name: 'Big loan',
      description: null,
      config: { requires_amount: true, min_witnesses: 2, colour: 'red' },
    }),
  ).toEqual({
    outcome: 'import',
    sourceId: typeId,
    type: {
      key: 'big-loan',
      name: 'Big loan',
      requiresAmount: true,
      requiresDueDate: false,
      minWitnesses: 2,
    },
    reasons: ['unknown config key "colour" left out'],
  });
});
