// evolve(state, event) → state: what each event means for a commitment. No rules here, only facts.
import { unreachable } from '../refusal.ts';
import type { CommitmentEvent } from './events.ts';
import { type Commitment, creatorOf, type Party } from './state.ts';

export interface EventEnvelope {
  event: CommitmentEvent;
  /** recordedAt of the entry. */
  at: string;
}

function setParties(state: Commitment, update: (party: Party) => Party): Party[] {
  return state.parties.map(update);
}

export function evolve(state: Commitment, { event, at }: EventEnvelope): Commitment {
  const next: Commitment = { ...state, version: state.version + 1, updatedAt: at };
  switch (event.type) {
    case 'CommitmentDrafted': {
      const { type, creatorId, title, description, terms, amount, dueAt } = event.data;
      return {
        ...next,
        exists: true,
        type,
        title,
        description,
        terms,
        amount,
        dueAt,
        status: 'draft',
        createdAt: at,
        parties: [{ userId: creatorId, role: 'creator', response: 'accepted' }],
      };
    }
    case 'CommitmentUpdated':
      return { ...next, ...event.data.changes };
    case 'PartyInvited':
      return { ...next, parties: [...state.parties, { ...event.data, response: 'invited' }] };
    case 'PartyRemoved':
      return { ...next, parties: state.parties.filter((p) => p.userId !== event.data.userId) };
    case 'DocumentAttached': {
      const attachedBy = creatorOf(state)?.userId ?? null;
      return { ...next, documents: [...state.documents, { ...event.data, purpose: 'terms', attachedBy }] };
    }
    case 'EvidenceAttached': {
      const { userId, ...document } = event.data;
      return {
        ...next,
        documents: [...state.documents, { ...document, purpose: 'evidence', attachedBy: userId }],
      };
    }
    case 'DocumentRemoved':
      return { ...next, documents: state.documents.filter((d) => d.documentId !== event.data.documentId) };
    case 'CommitmentProposed':
      // Every invitee answers the proposal as it now stands.
      return {
        ...next,
        status: 'proposed',
        parties: setParties(state, (p) => (p.role === 'creator' ? p : { ...p, response: 'invited' })),
      };
    case 'ProposalWithdrawn':
      return { ...next, status: 'draft' };
    case 'InvitationAccepted':
      return {
        ...next,
        parties: setParties(state, (p) =>
          p.userId === event.data.userId ? { ...p, response: 'accepted' } : p,
        ),
      };
    case 'InvitationDeclined':
      return {
        ...next,
        status: 'draft',
        parties: setParties(state, (p) =>
          p.userId === event.data.userId ? { ...p, response: 'declined' } : p,
        ),
      };
    case 'CommitmentActivated':
      return { ...next, status: 'active' };
    case 'CommitmentCancelled':
      return { ...next, status: 'cancelled' };
    case 'FulfilmentClaimed':
      return { ...next, status: 'fulfilment_claimed', fulfilmentClaimedBy: event.data.userId };
    case 'FulfilmentConfirmed':
      return { ...next, status: 'fulfilled' };
    case 'CommitmentDisputed':
    case 'BreachReported':
      return { ...next, status: 'disputed', resolutionVotes: {} };
    case 'ResolutionVoted':
      return {
        ...next,
        resolutionVotes: { ...state.resolutionVotes, [event.data.userId]: event.data.outcome },
      };
    case 'DisputeResolved':
      return { ...next, status: event.data.outcome, resolutionVotes: {} };
    case 'CancellationRequested':
      return { ...next, cancellationRequestedBy: [...state.cancellationRequestedBy, event.data.userId] };
    case 'DeadlineMissed':
      return { ...next, overdue: true };
    case 'AmendmentProposed':
      return {
        ...next,
        amendment: {
          amendmentId: event.data.amendmentId,
          proposedBy: event.data.userId,
          changes: event.data.changes,
          acceptedBy: [event.data.userId],
        },
      };
    case 'AmendmentAccepted':
      return state.amendment
        ? {
            ...next,
            amendment: { ...state.amendment, acceptedBy: [...state.amendment.acceptedBy, event.data.userId] },
          }
        : next;
    case 'AmendmentDeclined':
      return { ...next, amendment: null };
    case 'AmendmentApplied': {
      const changes = state.amendment?.changes ?? {};
      const overdue = 'dueAt' in changes ? false : state.overdue;
      return { ...next, ...changes, overdue, amendment: null };
    }
    case 'CommitmentImported': {
      const { source: _source, creatorId, documents, ...imported } = event.data;
      return {
        ...next,
        ...imported,
        exists: true,
        createdAt: at,
        documents: documents.map((d) => ({ ...d, purpose: 'terms' as const, attachedBy: creatorId })),
      };
    }
    default:
      return unreachable(event);
  }
}
