// decide(command, state, ctx) → events: every lifecycle rule of DESIGN.md, in one place.
import { invalid, refuse, unreachable } from '../refusal.ts';
import type { CommitmentCommand } from './commands.ts';
import type { CommitmentEvent } from './events.ts';
import { mustBeCreator, mustBeInvitee, mustBeParty, mustBePrincipal } from './policy.ts';
import {
  type Commitment,
  latestDocuments,
  participants,
  partyOf,
  principals,
  type Status,
  witnesses,
} from './state.ts';
import type { CommitmentType } from './types.ts';

export interface Context {
  /** Who acts; null for the system (deadlines). */
  actor: string | null;
  /** Now, as an ISO instant. */
  now: string;
  /** A new UUID each call. */
  newId(): string;
  /** The commitment types, by key. */
  types: ReadonlyMap<string, CommitmentType>;
}

const LABEL: Record<Status, string> = {
  draft: 'a draft',
  proposed: 'proposed',
  active: 'active',
  fulfilment_claimed: 'awaiting confirmation of fulfilment',
  fulfilled: 'fulfilled',
  disputed: 'disputed',
  breached: 'breached',
  cancelled: 'cancelled',
};

function mustBe(state: Commitment, doing: string, ...allowed: Status[]): void {
  if (!allowed.includes(state.status)) {
    const when = allowed.map((s) => LABEL[s]).join(' or ');
    refuse(
      `cannot ${doing}: the commitment is ${LABEL[state.status]}; this is only possible while it is ${when}`,
    );
  }
}

function mustExist(state: Commitment): void {
  if (!state.exists) refuse('the commitment does not exist');
}

function actorOf(ctx: Context): string {
  if (ctx.actor === null) invalid('actor', 'this command needs a user');
  return ctx.actor;
}

export function decide(command: CommitmentCommand, state: Commitment, ctx: Context): CommitmentEvent[] {
  if (command.action === 'create') return create(command, state, ctx);
  mustExist(state);
  if (command.action === 'miss-deadline') return missDeadline(state, ctx);
  const actor = actorOf(ctx);
  switch (command.action) {
    case 'update': {
      mustBeCreator(state, actor, 'change the terms');
      if (state.status === 'active') refuse('the commitment is active: propose an amendment instead');
      mustBe(state, 'change the terms', 'draft');
      const { action: _action, ...changes } = command;
      return [{ type: 'CommitmentUpdated', data: { changes } }];
    }
    case 'invite': {
      mustBeCreator(state, actor, 'invite parties');
      mustBe(state, 'invite parties', 'draft');
      if (partyOf(state, command.userId)) refuse('this user is already a party to the commitment');
      return [{ type: 'PartyInvited', data: { userId: command.userId, role: command.role } }];
    }
    case 'remove-party': {
      mustBeCreator(state, actor, 'remove parties');
      mustBe(state, 'remove parties', 'draft');
      const party = partyOf(state, command.userId);
      if (!party) refuse('this user is not a party to the commitment');
      if (party.role === 'creator') refuse('the creator cannot be removed; cancel the commitment instead');
      return [{ type: 'PartyRemoved', data: { userId: command.userId } }];
    }
    case 'attach-document': {
      mustBeCreator(state, actor, 'attach documents');
      mustBe(state, 'attach documents', 'draft');
      const previous = latestDocuments(state).find((d) => d.name === command.name);
      return [
        {
          type: 'DocumentAttached',
          data: {
            documentId: previous?.documentId ?? command.documentId ?? ctx.newId(),
            name: command.name,
            mediaType: command.mediaType,
            size: command.size,
            sha256: command.sha256,
            version: (previous?.version ?? 0) + 1,
          },
        },
      ];
    }
    case 'remove-document': {
      mustBeCreator(state, actor, 'remove documents');
      mustBe(state, 'remove documents', 'draft');
      if (!latestDocuments(state).some((d) => d.documentId === command.documentId)) {
        refuse('no such document on this commitment');
      }
      return [{ type: 'DocumentRemoved', data: { documentId: command.documentId } }];
    }
    case 'propose':
      return propose(state, actor, ctx);
    case 'withdraw':
      mustBeCreator(state, actor, 'withdraw the proposal');
      mustBe(state, 'withdraw the proposal', 'proposed');
      return [{ type: 'ProposalWithdrawn', data: {} }];
    case 'accept': {
      const party = mustBeInvitee(state, actor, 'accept');
      mustBe(state, 'accept', 'proposed');
      if (party.response === 'accepted') refuse('you have already accepted');
      const stillOpen = state.parties.filter((p) => p.response !== 'accepted' && p.userId !== actor);
      const accepted: CommitmentEvent = { type: 'InvitationAccepted', data: { userId: actor } };
      return stillOpen.length === 0 ? [accepted, { type: 'CommitmentActivated', data: {} }] : [accepted];
    }
    case 'decline':
      mustBeInvitee(state, actor, 'decline');
      mustBe(state, 'decline', 'proposed');
      return [
        {
          type: 'InvitationDeclined',
          data: { userId: actor, ...(command.reason ? { reason: command.reason } : {}) },
        },
      ];
    case 'cancel':
      mustBeCreator(state, actor, 'cancel the commitment');
      if (state.status === 'active')
        refuse('the commitment is active: request a cancellation that every party agrees to');
      mustBe(state, 'cancel', 'draft', 'proposed');
      return [{ type: 'CommitmentCancelled', data: command.reason ? { reason: command.reason } : {} }];
    case 'claim-fulfilment':
      mustBePrincipal(state, actor, 'claim fulfilment');
      mustBe(state, 'claim fulfilment', 'active');
      return [
        {
          type: 'FulfilmentClaimed',
          data: { userId: actor, ...(command.note ? { note: command.note } : {}) },
        },
      ];
    case 'confirm-fulfilment': {
      mustBeParty(state, actor, 'confirm fulfilment');
      mustBe(state, 'confirm fulfilment', 'fulfilment_claimed');
      if (state.fulfilmentClaimedBy === actor)
        refuse('you claimed fulfilment: another party has to confirm it');
      return [{ type: 'FulfilmentConfirmed', data: { userId: actor } }];
    }
    case 'dispute':
      mustBeParty(state, actor, 'dispute the commitment');
      mustBe(state, 'dispute', 'active', 'fulfilment_claimed');
      return [{ type: 'CommitmentDisputed', data: { userId: actor, reason: command.reason } }];
    case 'report-breach':
      mustBePrincipal(state, actor, 'report a breach');
      mustBe(state, 'report a breach', 'active');
      return [{ type: 'BreachReported', data: { userId: actor, reason: command.reason } }];
    case 'resolve':
      return resolve(state, actor, command.outcome);
    case 'request-cancellation': {
      mustBePrincipal(state, actor, 'request cancellation');
      mustBe(state, 'request cancellation', 'active');
      if (state.cancellationRequestedBy.includes(actor)) refuse('you have already agreed to cancel');
      const agreed = new Set([...state.cancellationRequestedBy, actor]);
      const requested: CommitmentEvent = { type: 'CancellationRequested', data: { userId: actor } };
      const everyone = principals(state).every((p) => agreed.has(p.userId));
      return everyone
        ? [requested, { type: 'CommitmentCancelled', data: { reason: 'all parties agreed' } }]
        : [requested];
    }
    case 'propose-amendment': {
      mustBePrincipal(state, actor, 'propose an amendment');
      mustBe(state, 'propose an amendment', 'active');
      if (state.amendment) refuse('another amendment is awaiting answers; accept or decline it first');
      const amendmentId = ctx.newId();
      const proposed: CommitmentEvent = {
        type: 'AmendmentProposed',
        data: { amendmentId, userId: actor, changes: command.changes },
      };
      return principals(state).length === 1
        ? [proposed, { type: 'AmendmentApplied', data: { amendmentId } }]
        : [proposed];
    }
    case 'accept-amendment': {
      mustBePrincipal(state, actor, 'accept an amendment');
      const amendment = state.amendment;
      if (!amendment || amendment.amendmentId !== command.amendmentId)
        refuse('no such amendment is awaiting answers');
      if (amendment.acceptedBy.includes(actor)) refuse('you have already accepted this amendment');
      const accepted = new Set([...amendment.acceptedBy, actor]);
      const event: CommitmentEvent = {
        type: 'AmendmentAccepted',
        data: { amendmentId: amendment.amendmentId, userId: actor },
      };
      return principals(state).every((p) => accepted.has(p.userId))
        ? [event, { type: 'AmendmentApplied', data: { amendmentId: amendment.amendmentId } }]
        : [event];
    }
    case 'decline-amendment': {
      mustBePrincipal(state, actor, 'decline an amendment');
      const amendment = state.amendment;
      if (!amendment || amendment.amendmentId !== command.amendmentId)
        refuse('no such amendment is awaiting answers');
      return [{ type: 'AmendmentDeclined', data: { amendmentId: amendment.amendmentId, userId: actor } }];
    }
    default:
      return unreachable(command);
  }
}

function create(
  command: Extract<CommitmentCommand, { action: 'create' }>,
  state: Commitment,
  ctx: Context,
): CommitmentEvent[] {
  if (state.exists) refuse('a commitment with this id already exists');
  const creatorId = actorOf(ctx);
  if (!ctx.types.has(command.type)) invalid('type', `unknown commitment type "${command.type}"`);
  return [
    {
      type: 'CommitmentDrafted',
      data: {
        type: command.type,
        creatorId,
        title: command.title,
        description: command.description ?? '',
        terms: command.terms ?? '',
        amount: command.amount ?? null,
        dueAt: command.dueAt ?? null,
      },
    },
  ];
}

function propose(state: Commitment, actor: string, ctx: Context): CommitmentEvent[] {
  mustBeCreator(state, actor, 'propose the commitment');
  mustBe(state, 'propose', 'draft');
  if (participants(state).length === 0) refuse('invite at least one participant before proposing');
  const type = ctx.types.get(state.type);
  if (type?.requiresAmount && !state.amount)
    refuse(`a ${type.name.toLowerCase()} commitment needs an amount`);
  if (type?.requiresDueDate && !state.dueAt)
    refuse(`a ${type.name.toLowerCase()} commitment needs a due date`);
  if (type && witnesses(state).length < type.minWitnesses) {
    refuse(
      `a ${type.name.toLowerCase()} commitment needs ${type.minWitnesses} witness(es); invite them first`,
    );
  }
  if (state.dueAt && state.dueAt <= ctx.now) refuse('the due date has passed; change it before proposing');
  return [{ type: 'CommitmentProposed', data: {} }];
}

function resolve(state: Commitment, actor: string, outcome: 'fulfilled' | 'breached'): CommitmentEvent[] {
  const party = mustBeParty(state, actor, 'resolve the dispute');
  mustBe(state, 'resolve', 'disputed');
  if (party.role === 'witness') return [{ type: 'DisputeResolved', data: { outcome, decidedBy: 'witness' } }];
  const votes = { ...state.resolutionVotes, [actor]: outcome };
  const vote: CommitmentEvent = { type: 'ResolutionVoted', data: { userId: actor, outcome } };
  const agreed = principals(state).every((p) => votes[p.userId] === outcome);
  return agreed ? [vote, { type: 'DisputeResolved', data: { outcome, decidedBy: 'agreement' } }] : [vote];
}

function missDeadline(state: Commitment, ctx: Context): CommitmentEvent[] {
  if (ctx.actor !== null) invalid('actor', 'only the system marks missed deadlines');
  mustBe(state, 'mark the deadline missed', 'active', 'fulfilment_claimed');
  if (!state.dueAt || state.dueAt > ctx.now) refuse('the due date has not passed');
  if (state.overdue) refuse('the commitment is already marked overdue');
  return [{ type: 'DeadlineMissed', data: { dueAt: state.dueAt } }];
}
