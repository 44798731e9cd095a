// The states of the commitments the notifier folded last, so a batch folds only the entries after
// them instead of replaying each touched commitment from its first entry: the work of an event no
// longer grows with its commitment's history.
//
// A kept state is the fold of its stream's entries up to a version, a function of the ledger
// alone, true whether or not the batch that read it committed. The ledger changes a body only by
// erasing it (a redaction), and each erasure is counted in its own transaction
// (ledger_body_changes): when the count has moved, every kept state is dropped. So only states
// folded from rows read with the count (in its statement) or after it are kept: the states before
// each batch, never those after its entries, which the projector opened before this count was read.

import {
  type applyRecorded,
  type Commitment,
  commitmentIdOf,
  commitmentStream,
  initialState,
} from '@connect/domain';
import { type BodyCipher, type Entry, streamRowsAfter, streamRowsWithErasures } from '@connect/ledger';
import type pg from 'pg';

/** A commitment's state with the version and ledger index of the last entry folded into it. */
export interface FoldedState {
  state: Commitment;
  version: number;
  index: number;
}

export type ApplyEntry = (state: Commitment, entry: Entry) => ReturnType<typeof applyRecorded>;

export interface CommitmentStates {
  /**
   * The states of these commitments just before ledger index `before`, folded on from those kept
   * (a new map, the caller's to change); they are kept in turn.
   */
  before(
    client: pg.ClientBase,
    cipher: BodyCipher,
    ids: readonly string[],
    before: number,
  ): Promise<Map<string, FoldedState>>;
}

/** How many commitments' states are kept, the least recently touched dropped first. */
export const KEPT_STATES = 10_000;

export function commitmentStates(apply: ApplyEntry, capacity = KEPT_STATES): CommitmentStates {
  const kept = new Map<string, FoldedState>();
  /** The count of body erasures when the kept states were read (-1: not yet read). */
  let erasures = -1;

  function keep(states: ReadonlyMap<string, FoldedState>) {
    for (const [id, folded] of states) {
      kept.delete(id);
      kept.set(id, folded);
    }
    for (const id of kept.keys()) {
      if (kept.size <= capacity) break;
      kept.delete(id);
    }
  }

  return {
    async before(client, cipher, ids, before) {
      const states = new Map<string, FoldedState>();
      for (const id of ids) {
        const known = kept.get(id);
        if (known === undefined) continue;
        // A state at or past `before` was folded for a later batch than this one (a rebuild from
        // the start, a database restored to an earlier point): it is not the state before.
        if (known.index < before) states.set(id, known);
        else kept.delete(id);
      }
      const streams = (folded: ReadonlyMap<string, FoldedState>) =>
        ids.map((id) => ({ stream: commitmentStream(id), version: folded.get(id)?.version ?? -1 }));
      // Read on from the kept states with the erasure count, in one statement; should the count
      // have moved, the kept states are dropped and the streams read whole, after that count.
      const read = await streamRowsWithErasures(client, streams(states), before);
      let rows = read.rows;
      if (read.erasures !== erasures) {
        kept.clear();
        erasures = read.erasures;
        if (states.size > 0) {
          states.clear();
          rows = await streamRowsAfter(client, streams(states), before);
        }
      }
      for (const entry of await cipher.entries(rows, '')) {
        const id = commitmentIdOf(entry.stream) as string;
        const state = apply(states.get(id)?.state ?? initialState(id), entry).state;
        states.set(id, { state, version: entry.version, index: entry.index });
      }
      keep(states);
      return new Map(states);
    },
  };
}
