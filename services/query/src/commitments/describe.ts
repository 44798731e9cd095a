// A sentence a person can read for each event of a commitment's history.
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
  const name = (id: unknown) => (typeof id === 'string' ? (names.get(id) ?? 'someone') : 'someone');
  const who = row.actor === null ? 'Connect' : name(row.actor);
  const c = row.changes as Record<string, unknown>;
  const reason = typeof c.reason === 'string' ? `: ${c.reason}` : '';
  const changed = (changes: unknown) => list(Object.keys((changes as object) ?? {}));
  switch (row.type) {
    case 'CommitmentDrafted':
      return `${who} drafted "${c.title}" (${c.type})`;
    case 'CommitmentUpdated':
      return `${who} changed ${changed(c.changes)}`;
    case 'PartyInvited':
      return `${who} invited ${name(c.userId)} as ${c.role}`;
    case 'PartyRemoved':
      return `${who} removed ${name(c.userId)}`;
    case 'DocumentAttached':
      return `${who} attached ${c.name} (version ${c.version})`;
    case 'DocumentRemoved':
      return `${who} removed a document`;
    case 'CommitmentProposed':
      return `${who} proposed the commitment`;
    case 'ProposalWithdrawn':
      return `${who} withdrew the proposal`;
    case 'InvitationAccepted':
      return `${name(c.userId)} accepted`;
    case 'InvitationDeclined':
      return `${name(c.userId)} declined${reason}`;
    case 'CommitmentActivated':
      return 'Everyone accepted: the commitment is active';
    case 'CommitmentCancelled':
      return `${who} cancelled the commitment${reason}`;
    case 'FulfilmentClaimed':
      return `${name(c.userId)} said it is fulfilled`;
    case 'FulfilmentConfirmed':
      return `${name(c.userId)} confirmed it is fulfilled`;
    case 'CommitmentDisputed':
      return `${name(c.userId)} disputed it${reason}`;
    case 'BreachReported':
      return `${name(c.userId)} reported a breach${reason}`;
    case 'ResolutionVoted':
      return `${name(c.userId)} voted to resolve it as ${c.outcome}`;
    case 'DisputeResolved':
      return `The dispute was resolved as ${c.outcome} (${c.decidedBy === 'witness' ? 'by a witness' : 'by agreement'})`;
    case 'CancellationRequested':
      return `${name(c.userId)} asked to cancel`;
    case 'DeadlineMissed':
      return `The due date (${c.dueAt}) passed`;
    case 'AmendmentProposed':
      return `${name(c.userId)} proposed changing ${changed(c.changes)}`;
    case 'AmendmentAccepted':
      return `${name(c.userId)} accepted the amendment`;
    case 'AmendmentDeclined':
      return `${name(c.userId)} declined the amendment`;
    case 'AmendmentApplied':
      return 'Everyone accepted the amendment: the terms changed';
    default:
      return `${who}: ${row.type}`;
  }
}
