// From the projector's NOTIFY to subscribers: when the read models move on, find the commitments
// that changed and publish each to its topic and to each party's topic. Whether a subscriber may
// see it is decided per subscriber (filter and read under row-level security), never here.
import type pg from 'pg';
import type { ProjectedIndex } from '../projected-index.ts';

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
