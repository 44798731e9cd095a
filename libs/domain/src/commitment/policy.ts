// Who may do what to a commitment: every permission rule lives here, and only here.
import { forbid, forbidByRule } from '../refusal.ts';
import type { UserRole } from '../roles.ts';
import { type Commitment, type Party, partyOf } from './state.ts';
import type { CommitmentType } from './types.ts';

/** What the command service tells decide about a user a command concerns (the actor, an invitee). */
export interface PersonFacts {
  /** Told where a rule needs it (creating, being invited); not told counts as not verified. */
  emailVerified?: boolean;
  roles: readonly UserRole[];
}

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

/** An auditor reads and audits; it acts on no commitment (unknown facts: not an auditor). */
export function mustNotBeAuditor(facts: PersonFacts | undefined): void {
  if (facts?.roles.includes('auditor')) {
    forbidByRule('role: auditor', 'An auditor reads every commitment but cannot act on one (role: auditor).');
  }
}

/** The type's createdBy policy; unknown facts count as an unverified user with no role. */
export function mustBeAllowedToCreate(type: CommitmentType, facts: PersonFacts | undefined): void {
  const createdBy = type.createdBy ?? 'anyone';
  if (createdBy === 'verified' && !facts?.emailVerified) {
    forbidByRule(
      'createdBy: verified',
      `Only users with a verified email may create '${type.key}' commitments (type policy createdBy: verified).`,
    );
  }
  if (createdBy === 'admin' && !facts?.roles.includes('admin')) {
    forbidByRule(
      'createdBy: admin',
      `Only admins may create '${type.key}' commitments (type policy createdBy: admin).`,
    );
  }
}

/** The type's witnessesMustBeVerified policy, for the user invited as a witness. */
export function mustBeAllowedToWitness(type: CommitmentType, facts: PersonFacts | undefined): void {
  if (type.witnessesMustBeVerified && !facts?.emailVerified) {
    forbidByRule(
      'witnessesMustBeVerified',
      `Only users with a verified email may witness '${type.key}' commitments (type policy witnessesMustBeVerified).`,
    );
  }
}
