// given / when / then, in domain words.
import { expect } from 'vitest';
import {
  type CommitmentCommand,
  type CommitmentEvent,
  type Context,
  DEFAULT_TYPES,
  decide,
  evolve,
  initialState,
  Refusal,
  type RefusalKind,
} from '../src/index.ts';

export const ana = 'user-ana';
export const ben = 'user-ben';
export const cy = 'user-cy';
export const dee = 'user-dee';

export const NOW = '2026-11-25T12:00:00.000Z';
export const types = new Map(
  [
    ...DEFAULT_TYPES,
    { key: 'witnessed', name: 'Witnessed', requiresAmount: false, requiresDueDate: false, minWitnesses: 1 },
  ].map((t) => [t.key, t]),
);

let ids = 0;
export function context(actor: string | null, now = NOW): Context {
  return { actor, now, types, newId: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}` };
}

export interface When {
  command: CommitmentCommand;
  actor: string | null;
  now?: string;
}

export const by = (actor: string | null, command: CommitmentCommand, now?: string): When => ({
  command,
  actor,
  now,
});

export function given(...history: CommitmentEvent[]) {
  const state = history.reduce((s, event) => evolve(s, { event, at: NOW }), initialState('c-1'));
  return {
    state,
    when({ command, actor, now }: When) {
      const run = () => decide(command, state, context(actor, now));
      return {
        // biome-ignore lint/suspicious/noThenProperty: given/when/then reads as the spec says; never awaited
        then(...expected: (CommitmentEvent | ((e: CommitmentEvent) => void))[]) {
          const events = run();
          expect(events).toHaveLength(expected.length);
          expected.forEach((want, i) => {
            if (typeof want === 'function') want(events[i] as CommitmentEvent);
            else expect(events[i]).toEqual(want);
          });
          return events.reduce((s, event) => evolve(s, { event, at: NOW }), state);
        },
        refuses(reason: RegExp | string, kind: RefusalKind = 'conflict') {
          let caught: unknown;
          try {
            run();
          } catch (error) {
            caught = error;
          }
          expect(caught).toBeInstanceOf(Refusal);
          expect((caught as Refusal).kind).toBe(kind);
          expect((caught as Refusal).reason).toMatch(reason);
        },
      };
    },
  };
}

// Events, named as the story tells them.
export const drafted = (
  over: Partial<Extract<CommitmentEvent, { type: 'CommitmentDrafted' }>['data']> = {},
): CommitmentEvent => ({
  type: 'CommitmentDrafted',
  data: {
    type: 'personal',
    creatorId: ana,
    title: 'Lend Ben 200 EUR',
    description: '',
    terms: 'Back by June',
    amount: null,
    dueAt: null,
    ...over,
  },
});
export const invited = (
  userId: string,
  role: 'participant' | 'witness' = 'participant',
): CommitmentEvent => ({
  type: 'PartyInvited',
  data: { userId, role },
});
export const proposed: CommitmentEvent = { type: 'CommitmentProposed', data: {} };
export const accepted = (userId: string): CommitmentEvent => ({
  type: 'InvitationAccepted',
  data: { userId },
});
export const declined = (userId: string): CommitmentEvent => ({
  type: 'InvitationDeclined',
  data: { userId },
});
export const activated: CommitmentEvent = { type: 'CommitmentActivated', data: {} };
export const claimed = (userId: string): CommitmentEvent => ({ type: 'FulfilmentClaimed', data: { userId } });
export const disputed = (userId: string, reason = 'not paid'): CommitmentEvent => ({
  type: 'CommitmentDisputed',
  data: { userId, reason },
});
export const cancelled = (reason?: string): CommitmentEvent => ({
  type: 'CommitmentCancelled',
  data: reason ? { reason } : {},
});

/** A commitment between ana (creator) and ben (participant), active. */
export const activeBetweenAnaAndBen = [drafted(), invited(ben), proposed, accepted(ben), activated];

/** The attach-document command for a file of this name. */
export const attach = (name: string, sha256 = 'a'.repeat(64)): CommitmentCommand => ({
  action: 'attach-document',
  name,
  mediaType: 'application/pdf',
  size: 10,
  sha256,
});
export const evidence = (
  userId: string,
  documentId: string,
  name: string,
  version = 1,
): Extract<CommitmentEvent, { type: 'EvidenceAttached' }> => ({
  type: 'EvidenceAttached',
  data: { documentId, name, mediaType: 'application/pdf', size: 10, sha256: 'a'.repeat(64), version, userId },
});
