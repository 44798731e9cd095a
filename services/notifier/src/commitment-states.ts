// The states of the commitments the notifier saw last, so a batch folds only the entries after
// them instead of replaying each touched commitment from its first entry: the work of an event no
// longer grows with its commitment's history.
//
// A kept state is the fold of its stream's entries up to a version, a function of the ledger
// alone, true whether or not the batch that folded it committed. The ledger changes a body only
// by redacting it (EntryRedacted) or erasing its key (UserErased, which redacts too), and both are
// recorded after the body is gone: once either stream has grown, every kept state is dropped.
// Between a body's erasure and its record, a kept state still holds it, as a batch projected just
// before the erasure would have.

import {
  type applyRecorded,
  type Commitment,
  commitmentIdOf,
  commitmentStream,
  ERASURES_STREAM,
  initialState,
} from '@connect/domain';
import { type BodyCipher, type Entry, REDACTIONS_STREAM, streamRowsAfter } from '@connect/ledger';
import type pg from 'pg';

/** A commitment's state with the version and ledger index of the last entry folded into it. */
export interface FoldedState {
  state: Commitment;
  version: number;
  index: number;
}

export type ApplyEntry = (state: Commitment, entry: Entry) => ReturnType<typeof applyRecorded>;

export interface CommitmentStates {
  /** The states of these commitments just before ledger index `before`. */
  before(
    client: pg.ClientBase,
    cipher: BodyCipher,
    ids: readonly string[],
    before: number,
  ): Promise<Map<string, FoldedState>>;
  /** Keeps these states (the batch's last), dropping the least recently kept beyond the capacity. */
  keep(states: ReadonlyMap<string, FoldedState>): void;
}

/** How many commitments' states are kept, the least recently touched dropped first. */
export const KEPT_STATES = 10_000;

export function commitmentStates(apply: ApplyEntry, capacity = KEPT_STATES): CommitmentStates {
  const kept = new Map<string, FoldedState>();
  /** The last redaction or erasure the kept states were folded after (-1: none). */
  let bodiesChangedAt = -1;

  return {
    async before(client, cipher, ids, before) {
      const changedAt = await lastBodyChange(client);
      if (changedAt !== bodiesChangedAt) {
        kept.clear();
        bodiesChangedAt = changedAt;
      }
      const states = new Map<string, FoldedState>();
      for (const id of ids) {
        const known = kept.get(id);
        // A state at or past `before` is one a rolled-back batch folded: it is not the state before.
        if (known && known.index < before) states.set(id, known);
      }
      const rows = await streamRowsAfter(
        client,
        ids.map((id) => ({ stream: commitmentStream(id), version: states.get(id)?.version ?? -1 })),
        before,
      );
      for (const entry of await cipher.entries(rows, '')) {
        const id = commitmentIdOf(entry.stream) as string;
        const state = apply(states.get(id)?.state ?? initialState(id), entry).state;
        states.set(id, { state, version: entry.version, index: entry.index });
      }
      return states;
    },

    keep(states) {
      for (const [id, folded] of states) {
        kept.delete(id);
        kept.set(id, folded);
      }
      for (const id of kept.keys()) {
        if (kept.size <= capacity) break;
        kept.delete(id);
      }
    },
  };
}

/** The ledger index of the last redaction or erasure recorded (-1: none). */
async function lastBodyChange(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ at: string | null }>(
    `select greatest(
       (select index from ledger_entries where stream = $1 order by version desc limit 1),
       (select index from ledger_entries where stream = $2 order by version desc limit 1)) as at`,
    [REDACTIONS_STREAM, ERASURES_STREAM],
  );
  return Number(rows[0]?.at ?? -1);
}
