// The events of a commitment taken to active, for tests and benchmarks that write the ledger
// directly (no vitest here: the benchmarks import it too).
import type { NewEvent } from '@connect/ledger';

/** Drafted by `creator` with `participant` invited, proposed and accepted: active, in five events. */
export function activatedEvents(creator: string, participant: string, title: string): NewEvent[] {
  return [
    {
      type: 'CommitmentDrafted',
      schema: 2,
      data: {
        type: 'personal',
        creatorId: creator,
        title,
        description: '',
        terms: 'Return it by Friday',
        amount: null,
        dueAt: null,
      },
    },
    { type: 'PartyInvited', data: { userId: participant, role: 'participant' } },
    { type: 'CommitmentProposed', data: {} },
    { type: 'InvitationAccepted', data: { userId: participant } },
    { type: 'CommitmentActivated', data: {} },
  ];
}
