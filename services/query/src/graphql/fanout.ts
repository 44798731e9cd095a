// From the projector's NOTIFY to subscribers: when the read models move on, find the commitments
// that changed and publish each to its topic and to each party's topic. Whether a subscriber may
// see it is decided per subscriber (filter and read under row-level security), never here.
import type pg from 'pg';
import type { ProjectedIndex } from '../projected-index.ts';
import type { Connection, Connections } from './connections.ts';

export interface ChangedCommitment {
  id: string;
  index: number;
  parties: string[];
}

export const commitmentTopic = (id: string) => `commitment:${id}`;
export const userTopic = (userId: string) => `user:${userId}`;

/** Most commitments announced per advance (a catch-up after downtime is not a live change). */
const MAX_ANNOUNCED = 5000;

export function announceChanges(
  deps: { pool: pg.Pool; projectedIndex: ProjectedIndex },
  publish: (topic: string, payload: ChangedCommitment) => void,
  onError: (error: unknown) => void,
): () => void {
  let chain = Promise.resolve();
  return deps.projectedIndex.onAdvance((from, to) => {
    // One advance at a time, in order, so subscribers see changes in ledger order.
    chain = chain.then(() => announce(from, to)).catch(onError);
  });

  async function announce(from: number, to: number): Promise<void> {
    const { rows } = await deps.pool.query<{ id: string; index: number; parties: string[] }>(
      `select h.commitment_id as id, max(h.index) as index,
          coalesce((select array_agg(p.user_id) from commitment_parties p where p.commitment_id = h.commitment_id), '{}') as parties
        from commitment_history h
        where h.index > $1 and h.index <= $2
        group by h.commitment_id
        order by max(h.index)
        limit $3`,
      [from, to, MAX_ANNOUNCED],
    );
    for (const change of rows) {
      publish(commitmentTopic(change.id), change);
      for (const userId of change.parties) publish(userTopic(userId), change);
    }
  }
}

export interface ChangeTopics {
  publish(topic: string, change: ChangedCommitment): void;
  /** The changes published to `topic` from now on, until the iterator returns. */
  subscribe(topic: string, connection: Connection): AsyncIterableIterator<ChangedCommitment>;
}

/**
 * Topics in this process. A subscription's waiting changes hold each commitment once: a newer
 * change replaces the waiting one (what is sent is read when it is sent, so it is the same), which
 * bounds them by the commitments visible to it; and their count per connection is bounded too.
 */
export function changeTopics(connections: Pick<Connections, 'queuedOne'>): ChangeTopics {
  const listeners = new Map<string, Set<(change: ChangedCommitment) => void>>();
  return {
    publish(topic, change) {
      for (const listener of listeners.get(topic) ?? []) listener(change);
    },
    subscribe(topic, connection) {
      const waiting = new Map<string, ChangedCommitment>();
      let wake: (() => void) | undefined;
      let done = false;
      const listener = (change: ChangedCommitment) => {
        if (connection.socket.readyState !== connection.socket.OPEN) return;
        if (!waiting.delete(change.id)) connection.queued++;
        waiting.set(change.id, change);
        connections.queuedOne(connection);
        wake?.();
      };
      const subscribers = listeners.get(topic) ?? new Set();
      listeners.set(topic, subscribers.add(listener));
      const end = () => {
        if (done) return;
        done = true;
        subscribers.delete(listener);
        if (subscribers.size === 0 && listeners.get(topic) === subscribers) listeners.delete(topic);
        connection.queued -= waiting.size;
        waiting.clear();
        wake?.();
      };
      const iterator: AsyncIterableIterator<ChangedCommitment> = {
        async next() {
          while (!done && waiting.size === 0) await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          const [first] = waiting;
          if (done || !first) return { done: true, value: undefined };
          waiting.delete(first[0]);
          connection.queued--;
          return { done: false, value: first[1] };
        },
        async return() {
          end();
          return { done: true, value: undefined };
        },
        [Symbol.asyncIterator]() {
          return iterator;
        },
      };
      return iterator;
    },
  };
}
