// Who may do what to a commitment: every permission rule lives here, and only here.
import { forbid } from '../refusal.ts';
import { type Commitment, type Party, partyOf } from './state.ts';

export interface Actor {
  userId: string;
  /** Admins and auditors may read every commitment; they act like anyone else. */
  isAdmin?: boolean;
}

/** May this user see the commitment at all? (Reads; everything else needs a stricter rule.) */
export function canSee(state: Commitment, actor: Actor): boolean {
  return actor.isAdmin === true || partyOf(state, actor.userId) !== undefined;
}

export function mustBeCreator(state: Commitment, userId: string, doing: string): Party {
  const party = partyOf(state, userId);
  if (party?.role !== 'creator') forbid(`only the creator can ${doing}`);
  return party;
}

export function mustBeParty(state: Commitment, userId: string, doing: string): Party {
  const party = partyOf(state, userId);
  if (!party) forbid(`only a party to this commitment can ${doing}`);
  return party;
}

/** A principal party: the creator or a participant (a witness only watches). */
export function mustBePrincipal(state: Commitment, userId: string, doing: string): Party {
  const party = mustBeParty(state, userId, doing);
  if (party.role === 'witness') forbid(`a witness cannot ${doing}; only the creator and participants can`);
  return party;
}

export function mustBeInvitee(state: Commitment, userId: string, doing: string): Party {
  const party = partyOf(state, userId);
  if (!party || party.role === 'creator') forbid(`only an invited party can ${doing}`);
  return party;
}
