// A sentence a person can read for each event of a commitment's history.
import type { CommitmentEvent } from '@connect/domain';
import type { HistoryRow } from './queries.ts';

type Names = ReadonlyMap<string, string>;

const list = (keys: string[]) => keys.join(', ');

/** The user ids a history row mentions, whose names its summary needs. */
export function mentionedUsers(row: HistoryRow): string[] {
  const { userId, creatorId } = row.changes as { userId?: unknown; creatorId?: unknown };
  return [row.actor, userId, creatorId].filter((id): id is string => typeof id === 'string');
}

export function describeEvent(row: HistoryRow, names: Names): string {
  if (row.redacted) return 'This event was redacted; its proof still holds.';
  const name = (id: string) => names.get(id) ?? 'someone';
  const who = row.actor === null ? 'Connect' : name(row.actor);
  // The projector stores each event's data as read today (upcast), so it has today's schema.
  const event = { type: row.type, data: row.changes } as CommitmentEvent;
  const reason = (data: { reason?: string }) => (data.reason ? `: ${data.reason}` : '');
  const changed = (changes: object) => list(Object.keys(changes));
  switch (event.type) {
    case 'CommitmentDrafted':
      return `${who} drafted "${event.data.title}" (${event.data.type})`;
    case 'CommitmentUpdated':
      return `${who} changed ${changed(event.data.changes)}`;
    case 'PartyInvited':
      return `${who} invited ${name(event.data.userId)} as ${event.data.role}`;
    case 'PartyRemoved':
      return `${who} removed ${name(event.data.userId)}`;
    case 'DocumentAttached':
      return `${who} attached ${event.data.name} (version ${event.data.version})`;
    case 'EvidenceAttached':
      return `${name(event.data.userId)} attached ${event.data.name} as evidence (version ${event.data.version})`;
    case 'DocumentRemoved':
      return `${who} removed a document`;
    case 'CommitmentProposed':
      return `${who} proposed the commitment`;
    case 'ProposalWithdrawn':
      return `${who} withdrew the proposal`;
    case 'InvitationAccepted':
      return `${name(event.data.userId)} accepted`;
    case 'InvitationDeclined':
      return `${name(event.data.userId)} declined${reason(event.data)}`;
    case 'CommitmentActivated':
      return 'Everyone accepted: the commitment is active';
    case 'CommitmentCancelled':
      return `${who} cancelled the commitment${reason(event.data)}`;
    case 'FulfilmentClaimed':
      return `${name(event.data.userId)} said it is fulfilled`;
    case 'FulfilmentConfirmed':
      return `${name(event.data.userId)} confirmed it is fulfilled`;
    case 'CommitmentDisputed':
      return `${name(event.data.userId)} disputed it${reason(event.data)}`;
    case 'BreachReported':
      return `${name(event.data.userId)} reported a breach${reason(event.data)}`;
    case 'ResolutionVoted':
      return `${name(event.data.userId)} voted to resolve it as ${event.data.outcome}`;
    case 'DisputeResolved':
      return `The dispute was resolved as ${event.data.outcome} (${event.data.decidedBy === 'witness' ? 'by a witness' : 'by agreement'})`;
    case 'CancellationRequested':
      return `${name(event.data.userId)} asked to cancel`;
    case 'DeadlineMissed':
      return `The due date (${event.data.dueAt}) passed`;
    case 'AmendmentProposed':
      return `${name(event.data.userId)} proposed changing ${changed(event.data.changes)}`;
    case 'AmendmentAccepted':
      return `${name(event.data.userId)} accepted the amendment`;
    case 'AmendmentDeclined':
      return `${name(event.data.userId)} declined the amendment`;
    case 'AmendmentApplied':
      return 'Everyone accepted the amendment: the terms changed';
    case 'CommitmentImported':
      return `Imported from ${event.data.source} as it stood: "${event.data.title}" (${event.data.status})`;
    default:
      return `${who}: ${row.type}`;
  }
}
