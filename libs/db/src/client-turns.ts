// pg runs one statement at a time on a client. A statement sent while another runs waits in pg's
// own queue, but that queue is deprecated (pg 9 removes it): callers that share a client without
// waiting for each other take turns here instead.
import type pg from 'pg';

const turns = new WeakMap<pg.ClientBase, Promise<unknown>>();

/** `run` (statements on `client`) once everything given a turn on `client` before it has settled. */
export function inTurn<T>(client: pg.ClientBase, run: () => Promise<T>): Promise<T> {
  const result = (turns.get(client) ?? Promise.resolve()).then(run);
  turns.set(
    client,
    result.catch(() => undefined),
  );
  return result;
}
