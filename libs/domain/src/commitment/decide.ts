// decide(command, state, ctx) → events: every lifecycle rule of DESIGN.md, in one place, one small
// function per command.
import { invalid, refuse, unreachable } from '../refusal.ts';
import type { CommandName, CommitmentCommand } from './commands.ts';
import type { CommitmentEvent } from './events.ts';
import {
  mustBeAllowedToCreate,
  mustBeAllowedToWitness,
  mustBeCreator,
  mustBeInvitee,
  mustBeParty,
  mustBePrincipal,
  mustNotBeAuditor,
  type PersonFacts,
} from './policy.ts';
import {
  type Commitment,
  type DocumentVersion,
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
  /**
   * What the command service looked up about the actor and, for an invitation, the invitee (email
   * verified, roles); someone missing counts as unverified with no role.
   */
  people?: ReadonlyMap<string, PersonFacts>;
}

/** The context of a command a user gives. */
type UserContext = Context & { actor: string };
type Command<A extends CommandName> = Extract<CommitmentCommand, { action: A }>;

export function decide(command: CommitmentCommand, state: Commitment, ctx: Context): CommitmentEvent[] {
  if (ctx.actor !== null) mustNotBeAuditor(ctx.people?.get(ctx.actor));
  if (command.action === 'create') return create(command, state, ctx);
  mustExist(state);
  if (command.action === 'miss-deadline') return missDeadline(state, ctx);
  const by: UserContext = { ...ctx, actor: actorOf(ctx) };
  switch (command.action) {
    case 'update':
      return update(state, command, by);
    case 'invite':
      return invite(state, command, by);
    case 'remove-party':
      return removeParty(state, command, by);
    case 'attach-document':
      return attachDocument(state, command, by);
    case 'remove-document':
      return removeDocument(state, command, by);
    case 'propose':
      return propose(state, by);
    case 'withdraw':
      return withdraw(state, by);
    case 'accept':
      return accept(state, by);
    case 'decline':
      return decline(state, command, by);
    case 'cancel':
      return cancel(state, command, by);
    case 'claim-fulfilment':
      return claimFulfilment(state, command, by);
    case 'confirm-fulfilment':
      return confirmFulfilment(state, by);
    case 'dispute':
      return dispute(state, command, by);
    case 'report-breach':
      return reportBreach(state, command, by);
    case 'resolve':
      return resolve(state, command, by);
    case 'request-cancellation':
      return requestCancellation(state, by);
    case 'propose-amendment':
      return proposeAmendment(state, command, by);
    case 'accept-amendment':
      return acceptAmendment(state, command, by);
    case 'decline-amendment':
      return declineAmendment(state, command, by);
    default:
      return unreachable(command);
  }
}

function create(command: Command<'create'>, state: Commitment, ctx: Context): CommitmentEvent[] {
  if (state.exists) refuse('a commitment with this id already exists');
  const creatorId = actorOf(ctx);
  const type = ctx.types.get(command.type);
  if (!type) invalid('type', `unknown commitment type "${command.type}"`);
  mustBeAllowedToCreate(type, ctx.people?.get(creatorId));
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

function update(state: Commitment, command: Command<'update'>, { actor }: UserContext): CommitmentEvent[] {
  mustBeCreator(state, actor, 'change the terms');
  if (state.status === 'active') refuse('the commitment is active: propose an amendment instead');
  mustBe(state, 'change the terms', 'draft');
  const { action: _action, ...changes } = command;
  return [{ type: 'CommitmentUpdated', data: { changes } }];
}

function invite(
  state: Commitment,
  command: Command<'invite'>,
  { actor, types, people }: UserContext,
): CommitmentEvent[] {
  mustBeCreator(state, actor, 'invite parties');
  mustBe(state, 'invite parties', 'draft');
  if (partyOf(state, command.userId)) refuse('this user is already a party to the commitment');
  const type = types.get(state.type);
  if (command.role === 'witness' && type) mustBeAllowedToWitness(type, people?.get(command.userId));
  return [{ type: 'PartyInvited', data: { userId: command.userId, role: command.role } }];
}

function removeParty(
  state: Commitment,
  command: Command<'remove-party'>,
  { actor }: UserContext,
): CommitmentEvent[] {
  mustBeCreator(state, actor, 'remove parties');
  mustBe(state, 'remove parties', 'draft');
  const party = partyOf(state, command.userId);
  if (!party) refuse('this user is not a party to the commitment');
  if (party.role === 'creator') refuse('the creator cannot be removed; cancel the commitment instead');
  return [{ type: 'PartyRemoved', data: { userId: command.userId } }];
}

/** A draft's documents are its terms; once the commitment is agreed, documents are evidence. */
function attachDocument(
  state: Commitment,
  command: Command<'attach-document'>,
  ctx: UserContext,
): CommitmentEvent[] {
  return state.status === 'draft' ? attachTerms(state, command, ctx) : attachEvidence(state, command, ctx);
}

/** A document of the terms: the creator attaches it to a draft; the same name again is its next version. */
function attachTerms(
  state: Commitment,
  command: Command<'attach-document'>,
  ctx: UserContext,
): CommitmentEvent[] {
  mustBeCreator(state, ctx.actor, 'attach documents');
  const previous = latestDocuments(state).find((d) => d.purpose === 'terms' && d.name === command.name);
  return [{ type: 'DocumentAttached', data: documentVersion(state, command, previous, ctx) }];
}

/**
 * Evidence: once agreed, any party attaches proof (of payment, say) while the commitment is live.
 * The same name again from the same party is its next version; nobody replaces another's evidence.
 */
function attachEvidence(
  state: Commitment,
  command: Command<'attach-document'>,
  ctx: UserContext,
): CommitmentEvent[] {
  const party = mustBeParty(state, ctx.actor, 'attach documents');
  mustBe(state, 'attach documents', 'draft', 'active', 'fulfilment_claimed', 'disputed');
  if (party.response !== 'accepted') refuse('only a party who accepted the commitment can attach evidence');
  const previous = latestDocuments(state).find(
    (d) => d.purpose === 'evidence' && d.attachedBy === ctx.actor && d.name === command.name,
  );
  return [
    {
      type: 'EvidenceAttached',
      data: { ...documentVersion(state, command, previous, ctx), userId: ctx.actor },
    },
  ];
}

function documentVersion(
  state: Commitment,
  command: Command<'attach-document'>,
  previous: DocumentVersion | undefined,
  ctx: Context,
) {
  const documentId = previous?.documentId ?? command.documentId ?? ctx.newId();
  if (!previous && state.documents.some((d) => d.documentId === documentId))
    refuse('this document id belongs to another document');
  return {
    documentId,
    name: command.name,
    mediaType: command.mediaType,
    size: command.size,
    sha256: command.sha256,
    version: (previous?.version ?? 0) + 1,
  };
}

function removeDocument(
  state: Commitment,
  command: Command<'remove-document'>,
  { actor }: UserContext,
): CommitmentEvent[] {
  mustBeCreator(state, actor, 'remove documents');
  mustBe(state, 'remove documents', 'draft');
  if (!latestDocuments(state).some((d) => d.documentId === command.documentId)) {
    refuse('no such document on this commitment');
  }
  return [{ type: 'DocumentRemoved', data: { documentId: command.documentId } }];
}

function propose(state: Commitment, { actor, types, now }: UserContext): CommitmentEvent[] {
  mustBeCreator(state, actor, 'propose the commitment');
  mustBe(state, 'propose', 'draft');
  if (participants(state).length === 0) refuse('invite at least one participant before proposing');
  const type = types.get(state.type);
  if (type?.requiresAmount && !state.amount)
    refuse(`a ${type.name.toLowerCase()} commitment needs an amount`);
  if (type?.requiresDueDate && !state.dueAt)
    refuse(`a ${type.name.toLowerCase()} commitment needs a due date`);
  if (type && witnesses(state).length < type.minWitnesses) {
    refuse(
      `a ${type.name.toLowerCase()} commitment needs ${type.minWitnesses} witness(es); invite them first`,
    );
  }
  if (state.dueAt && state.dueAt <= now) refuse('the due date has passed; change it before proposing');
  return [{ type: 'CommitmentProposed', data: {} }];
}

function withdraw(state: Commitment, { actor }: UserContext): CommitmentEvent[] {
  mustBeCreator(state, actor, 'withdraw the proposal');
  mustBe(state, 'withdraw the proposal', 'proposed');
  return [{ type: 'ProposalWithdrawn', data: {} }];
}

function accept(state: Commitment, { actor }: UserContext): CommitmentEvent[] {
  const party = mustBeInvitee(state, actor, 'accept');
  mustBe(state, 'accept', 'proposed');
  if (party.response === 'accepted') refuse('you have already accepted');
  const stillOpen = state.parties.filter((p) => p.response !== 'accepted' && p.userId !== actor);
  const accepted: CommitmentEvent = { type: 'InvitationAccepted', data: { userId: actor } };
  return stillOpen.length === 0 ? [accepted, { type: 'CommitmentActivated', data: {} }] : [accepted];
}

function decline(state: Commitment, command: Command<'decline'>, { actor }: UserContext): CommitmentEvent[] {
  mustBeInvitee(state, actor, 'decline');
  mustBe(state, 'decline', 'proposed');
  return [
    {
      type: 'InvitationDeclined',
      data: { userId: actor, ...(command.reason ? { reason: command.reason } : {}) },
    },
  ];
}

function cancel(state: Commitment, command: Command<'cancel'>, { actor }: UserContext): CommitmentEvent[] {
  mustBeCreator(state, actor, 'cancel the commitment');
  if (state.status === 'active')
    refuse('the commitment is active: request a cancellation that every party agrees to');
  mustBe(state, 'cancel', 'draft', 'proposed');
  return [{ type: 'CommitmentCancelled', data: command.reason ? { reason: command.reason } : {} }];
}

function claimFulfilment(
  state: Commitment,
  command: Command<'claim-fulfilment'>,
  { actor }: UserContext,
): CommitmentEvent[] {
  mustBePrincipal(state, actor, 'claim fulfilment');
  mustBe(state, 'claim fulfilment', 'active');
  return [
    {
      type: 'FulfilmentClaimed',
      data: { userId: actor, ...(command.note ? { note: command.note } : {}) },
    },
  ];
}

function confirmFulfilment(state: Commitment, { actor }: UserContext): CommitmentEvent[] {
  mustBeParty(state, actor, 'confirm fulfilment');
  mustBe(state, 'confirm fulfilment', 'fulfilment_claimed');
  if (state.fulfilmentClaimedBy === actor) refuse('you claimed fulfilment: another party has to confirm it');
  return [{ type: 'FulfilmentConfirmed', data: { userId: actor } }];
}

function dispute(state: Commitment, command: Command<'dispute'>, { actor }: UserContext): CommitmentEvent[] {
  mustBeParty(state, actor, 'dispute the commitment');
  mustBe(state, 'dispute', 'active', 'fulfilment_claimed');
  return [{ type: 'CommitmentDisputed', data: { userId: actor, reason: command.reason } }];
}

function reportBreach(
  state: Commitment,
  command: Command<'report-breach'>,
  { actor }: UserContext,
): CommitmentEvent[] {
  mustBePrincipal(state, actor, 'report a breach');
  mustBe(state, 'report a breach', 'active');
  return [{ type: 'BreachReported', data: { userId: actor, reason: command.reason } }];
}

/** A witness resolves a dispute alone; without one, it resolves when every principal party votes alike. */
function resolve(
  state: Commitment,
  { outcome }: Command<'resolve'>,
  { actor }: UserContext,
): CommitmentEvent[] {
  const party = mustBeParty(state, actor, 'resolve the dispute');
  mustBe(state, 'resolve', 'disputed');
  if (party.role === 'witness') return [{ type: 'DisputeResolved', data: { outcome, decidedBy: 'witness' } }];
  const votes = { ...state.resolutionVotes, [actor]: outcome };
  const vote: CommitmentEvent = { type: 'ResolutionVoted', data: { userId: actor, outcome } };
  const agreed = principals(state).every((p) => votes[p.userId] === outcome);
  return agreed ? [vote, { type: 'DisputeResolved', data: { outcome, decidedBy: 'agreement' } }] : [vote];
}

function requestCancellation(state: Commitment, { actor }: UserContext): CommitmentEvent[] {
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

function proposeAmendment(
  state: Commitment,
  command: Command<'propose-amendment'>,
  { actor, newId }: UserContext,
): CommitmentEvent[] {
  mustBePrincipal(state, actor, 'propose an amendment');
  mustBe(state, 'propose an amendment', 'active');
  if (state.amendment) refuse('another amendment is awaiting answers; accept or decline it first');
  const amendmentId = newId();
  const proposed: CommitmentEvent = {
    type: 'AmendmentProposed',
    data: { amendmentId, userId: actor, changes: command.changes },
  };
  return principals(state).length === 1
    ? [proposed, { type: 'AmendmentApplied', data: { amendmentId } }]
    : [proposed];
}

function acceptAmendment(
  state: Commitment,
  command: Command<'accept-amendment'>,
  { actor }: UserContext,
): CommitmentEvent[] {
  mustBePrincipal(state, actor, 'accept an amendment');
  const { amendmentId, acceptedBy } = pendingAmendment(state, command.amendmentId);
  if (acceptedBy.includes(actor)) refuse('you have already accepted this amendment');
  const accepted = new Set([...acceptedBy, actor]);
  const event: CommitmentEvent = { type: 'AmendmentAccepted', data: { amendmentId, userId: actor } };
  return principals(state).every((p) => accepted.has(p.userId))
    ? [event, { type: 'AmendmentApplied', data: { amendmentId } }]
    : [event];
}

function declineAmendment(
  state: Commitment,
  command: Command<'decline-amendment'>,
  { actor }: UserContext,
): CommitmentEvent[] {
  mustBePrincipal(state, actor, 'decline an amendment');
  const { amendmentId } = pendingAmendment(state, command.amendmentId);
  return [{ type: 'AmendmentDeclined', data: { amendmentId, userId: actor } }];
}

function missDeadline(state: Commitment, ctx: Context): CommitmentEvent[] {
  if (ctx.actor !== null) invalid('actor', 'only the system marks missed deadlines');
  mustBe(state, 'mark the deadline missed', 'active', 'fulfilment_claimed');
  if (!state.dueAt || state.dueAt > ctx.now) refuse('the due date has not passed');
  if (state.overdue) refuse('the commitment is already marked overdue');
  return [{ type: 'DeadlineMissed', data: { dueAt: state.dueAt } }];
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

function pendingAmendment(state: Commitment, amendmentId: string) {
  const amendment = state.amendment;
  if (!amendment || amendment.amendmentId !== amendmentId) refuse('no such amendment is awaiting answers');
  return amendment;
}
