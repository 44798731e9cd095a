// The states this process last wrote, so a command on a commitment need not replay its stream.
// A cached state may be stale (another process appended since): it is only ever used to decide a
// command whose append expects that very version, so a stale one ends in a version conflict, or
// in a refusal (execute.ts): either drops it and decides again on the stream as stored.
import type { Commitment } from '@connect/domain';
import { LRUCache } from 'lru-cache';

export interface StateCache {
  get(commitmentId: string): Commitment | undefined;
  set(state: Commitment): void;
  drop(commitmentId: string): void;
}

export function stateCache(capacity = 10_000): StateCache {
  // Not a Map evicting its oldest key: once full, each eviction scanned past every key deleted before.
  const states = new LRUCache<string, Commitment>({ max: capacity });
  return {
    get: (id) => states.get(id),
    set: (state) => {
      states.set(state.id, state);
    },
    drop: (id) => {
      states.delete(id);
    },
  };
}
