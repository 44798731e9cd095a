// The states this process last wrote, so a command on a commitment need not replay its stream.
// A cached state may be stale (another process appended since): it is only ever used to decide a
// command whose append expects that very version, so a stale one ends in a version conflict, or
// in a refusal (execute.ts): either drops it and decides again on the stream as stored.
import type { Commitment } from '@connect/domain';

export interface StateCache {
  get(commitmentId: string): Commitment | undefined;
  set(state: Commitment): void;
  drop(commitmentId: string): void;
}

export function stateCache(capacity = 10_000): StateCache {
  const states = new Map<string, Commitment>();
  return {
    get: (id) => states.get(id),
    set: (state) => {
      states.delete(state.id);
      if (states.size >= capacity) states.delete(states.keys().next().value as string);
      states.set(state.id, state);
    },
    drop: (id) => {
      states.delete(id);
    },
  };
}
