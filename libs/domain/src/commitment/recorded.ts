// Replaying what the ledger recorded, including entries whose body was redacted: a redacted event
// keeps its place (the version moves on) but its content is gone, so only what the header still
// says is known (a redacted draft still has its creator, the header's actor).
import type { CommitmentEvent } from './events.ts';
import { readEvent } from './events.ts';
import { evolve } from './evolve.ts';
import type { Commitment } from './state.ts';

export interface RecordedEvent {
  type: string;
  schema: number;
  /** null once redacted */
  data: unknown;
  actor: string | null;
  recordedAt: string;
}

export const REDACTED_TITLE = '(redacted)';

export function applyRecorded(
  state: Commitment,
  recorded: RecordedEvent,
): { state: Commitment; event: CommitmentEvent | null } {
  const at = recorded.recordedAt;
  if (recorded.data !== null) {
    const event = readEvent(recorded);
    return { state: evolve(state, { event, at }), event };
  }
  const next = { ...state, version: state.version + 1, updatedAt: at };
  if (recorded.type === 'CommitmentDrafted' && !state.exists) {
    const creator =
      recorded.actor === null
        ? []
        : [{ userId: recorded.actor, role: 'creator' as const, response: 'accepted' as const }];
    return {
      state: { ...next, exists: true, title: REDACTED_TITLE, createdAt: at, parties: creator },
      event: null,
    };
  }
  return { state: next, event: null };
}

/** The state a stream's recorded events replay to. */
export function replayRecorded(initial: Commitment, recorded: RecordedEvent[]): Commitment {
  return recorded.reduce((state, entry) => applyRecorded(state, entry).state, initial);
}
