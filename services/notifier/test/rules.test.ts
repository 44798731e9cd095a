import {
  applyRecorded,
  type Commitment,
  CURRENT_SCHEMA,
  initialState,
  type RecordedEvent,
} from '@connect/domain';
import { describe, expect, test } from 'vitest';
import type { Notification } from '../src/notification.ts';
import { notificationsFor, UNKNOWN_NAME } from '../src/rules.ts';

const COMMITMENT = '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10';
const APP = 'https://app.example.com/';
const ana = 'u-ana';
const ben = 'u-ben';
const cat = 'u-cat';
const names = new Map([
  [ana, 'Ana'],
  [ben, 'Ben'],
  [cat, 'Cat'],
]);

type Step = RecordedEvent;
const nameOf = names;

const step = (actor: string | null, type: string, data: Record<string, unknown> = {}): Step => ({
  type,
  schema: CURRENT_SCHEMA[type as keyof typeof CURRENT_SCHEMA],
  data,
  actor,
  recordedAt: '2031-05-01T09:30:00.000Z',
});

// The history, in the domain's words.
const drafted = step(ana, 'CommitmentDrafted', {
  type: 'personal',
  creatorId: ana,
  title: 'Paint the fence',
  description: '',
  terms: 'One coat, white',
  amount: null,
  dueAt: '2031-06-01T12:00:00.000Z',
});
const invited = (userId: string, role = 'participant') => step(ana, 'PartyInvited', { userId, role });
const proposed = step(ana, 'CommitmentProposed');
const accepted = (userId: string) => step(userId, 'InvitationAccepted', { userId });
const declined = (userId: string, reason?: string) =>
  step(userId, 'InvitationDeclined', reason ? { userId, reason } : { userId });
const activated = (by: string) => step(by, 'CommitmentActivated');
const claimed = (userId: string) => step(userId, 'FulfilmentClaimed', { userId });
const disputed = (userId: string) => step(userId, 'CommitmentDisputed', { userId, reason: 'Only one coat' });
const amendment = '7c1e0f9a-8b7c-4d6e-9f4a-3b2c1d0e9f8a';
const amendmentProposed = (userId: string) =>
  step(userId, 'AmendmentProposed', { amendmentId: amendment, userId, changes: { terms: 'Two coats' } });
const evidence = (userId: string) =>
  step(userId, 'EvidenceAttached', {
    documentId: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
    name: 'receipt.pdf',
    mediaType: 'application/pdf',
    size: 100,
    sha256: 'a'.repeat(64),
    version: 1,
    userId,
  });
const missedDeadline = step(null, 'DeadlineMissed', { dueAt: '2031-06-01T12:00:00.000Z' });

const agreed = [drafted, invited(ben), invited(cat, 'witness'), proposed, accepted(ben), accepted(cat)];

function given(...history: Step[]) {
  const before = history.reduce<Commitment>(
    (state, recorded) => applyRecorded(state, recorded).state,
    initialState(COMMITMENT),
  );
  return {
    when(next: Step, index = 42): Notification[] {
      const { state: after, event } = applyRecorded(before, next);
      if (!event) throw new Error('no event');
      return notificationsFor(
        { index, actor: next.actor, recordedAt: next.recordedAt, event, before, after },
        { names, appUrl: APP },
      );
    },
  };
}

/** Who gets what: `Name kind: title`. */
const told = (notifications: Notification[]) =>
  notifications.map((n) => `${nameOf.get(n.recipientId)} ${n.kind}: ${n.title}`);

describe('who hears of what', () => {
  test('the invitee gets an invitation, naming who invited them; nobody else hears of it', () => {
    expect(told(given(drafted).when(invited(ben)))).toEqual([
      'Ben invitation: Ana invited you to “Paint the fence”',
    ]);
  });

  test('an invitation to a proposed commitment says it can be answered now', () => {
    const [invitation] = given(drafted, invited(ben), proposed).when(invited(cat, 'witness'));
    expect(invitation?.body).toBe(
      'Ana asks you to be a witness of “Paint the fence”. Read the terms, then accept or decline.',
    );
  });

  test('proposing tells every other party, not the creator who proposed', () => {
    expect(told(given(drafted, invited(ben), invited(cat, 'witness')).when(proposed))).toEqual([
      'Ben lifecycle: Ana proposed “Paint the fence”',
      'Cat lifecycle: Ana proposed “Paint the fence”',
    ]);
  });

  test('an acceptance goes to the creator only', () => {
    expect(told(given(drafted, invited(ben), invited(cat, 'witness'), proposed).when(accepted(ben)))).toEqual(
      ['Ana response: Ben accepted “Paint the fence”'],
    );
  });

  test('a decline goes to the creator, with the reason', () => {
    const notifications = given(drafted, invited(ben), proposed).when(declined(ben, 'Too soon'));
    expect(told(notifications)).toEqual(['Ana response: Ben declined “Paint the fence”']);
    expect(notifications[0]?.body).toMatch(/^Their reason: Too soon\. /);
  });

  test('activation tells every party but the one whose acceptance activated it', () => {
    const history = [drafted, invited(ben), invited(cat, 'witness'), proposed, accepted(cat), accepted(ben)];
    expect(told(given(...history).when(activated(ben)))).toEqual([
      'Ana lifecycle: “Paint the fence” is active',
      'Cat lifecycle: “Paint the fence” is active',
    ]);
  });

  test('a fulfilment claim, a dispute, an amendment and evidence reach every other party', () => {
    expect(told(given(...agreed, activated(cat)).when(claimed(ben)))).toEqual([
      'Ana lifecycle: Ben says “Paint the fence” is fulfilled',
      'Cat lifecycle: Ben says “Paint the fence” is fulfilled',
    ]);
    expect(told(given(...agreed, activated(cat), claimed(ben)).when(disputed(ana)))).toEqual([
      'Ben dispute: Ana disputed “Paint the fence”',
      'Cat dispute: Ana disputed “Paint the fence”',
    ]);
    expect(told(given(...agreed, activated(cat)).when(amendmentProposed(ben)))).toEqual([
      'Ana amendment: Ben proposed a change to “Paint the fence”',
      'Cat amendment: Ben proposed a change to “Paint the fence”',
    ]);
    expect(told(given(...agreed, activated(cat)).when(evidence(cat)))).toEqual([
      'Ana document: Cat added evidence to “Paint the fence”',
      'Ben document: Cat added evidence to “Paint the fence”',
    ]);
  });

  test('a deadline the system marks missed tells every party', () => {
    expect(told(given(...agreed, activated(cat)).when(missedDeadline))).toEqual([
      'Ana lifecycle: “Paint the fence” is overdue',
      'Ben lifecycle: “Paint the fence” is overdue',
      'Cat lifecycle: “Paint the fence” is overdue',
    ]);
  });

  test('the actor never hears of their own event', () => {
    const everyStep = [...agreed, activated(cat), claimed(ben), disputed(ana)];
    for (let i = 1; i < everyStep.length; i++) {
      const next = everyStep[i] as Step;
      for (const n of given(...everyStep.slice(0, i)).when(next)) expect(n.recipientId).not.toBe(next.actor);
    }
  });

  test('drafting and editing a draft tell nobody', () => {
    expect(given().when(drafted)).toEqual([]);
    expect(given(drafted).when(step(ana, 'CommitmentUpdated', { changes: { terms: 'Two coats' } }))).toEqual(
      [],
    );
  });
});

describe('what a notification says', () => {
  test('it links to the commitment in the app, carries its ledger index and a stable id', () => {
    const [invitation] = given(drafted).when(invited(ben), 17);
    expect(invitation).toEqual({
      id: `17:${ben}:invitation`,
      recipientId: ben,
      kind: 'invitation',
      title: 'Ana invited you to “Paint the fence”',
      body: 'Ana asks you to be a participant of “Paint the fence”. You can accept or decline once Ana proposes it.',
      link: `https://app.example.com/commitments/${COMMITMENT}`,
      commitmentId: COMMITMENT,
      ledgerIndex: 17,
      createdAt: '2031-05-01T09:30:00.000Z',
    });
  });

  test('someone whose name is not known is named as such, never by id', () => {
    const [invitation] = given(drafted).when(invited('u-dan'));
    expect(invitation?.recipientId).toBe('u-dan');
    const [response] = given(drafted, invited('u-dan'), proposed).when(accepted('u-dan'));
    expect(response?.title).toBe(`${UNKNOWN_NAME} accepted “Paint the fence”`);
    expect(response?.title).not.toContain('u-dan');
  });
});
