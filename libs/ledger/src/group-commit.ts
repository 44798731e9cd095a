// Group commit: items queue up while one batch commits, and the next batch takes everything
// queued (up to a weight). One batch is in flight at a time: a second, sent while the first
// holds the ledger head, would only wait on the head's row lock and then find the tree it was
// planned against gone, so it would be planned and sent again; queued here, it goes at once
// after, together with everything that arrived meanwhile.

export interface GroupCommitOptions<T, R> {
  /** Most weight one batch takes (a single heavier item still goes alone). */
  maxBatchWeight: number;
  weight(item: T): number;
  /**
   * Commits a batch: one result per item, in order. When it throws, each item is committed again
   * alone with `retry` true, so only the culprit fails; a retry that throws rejects its item.
   */
  commit(batch: T[], retry: boolean): Promise<R[]>;
}

export interface GroupCommit<T, R> {
  submit(item: T): Promise<R>;
  /** Resolves once nothing is queued or committing. */
  drain(): Promise<void>;
}

interface Queued<T, R> {
  item: T;
  resolve(result: R): void;
  reject(error: unknown): void;
}

export function groupCommit<T, R>(options: GroupCommitOptions<T, R>): GroupCommit<T, R> {
  const queue: Queued<T, R>[] = [];
  let committing = false;
  const idleWaiters: (() => void)[] = [];

  function nextBatch(): Queued<T, R>[] {
    const batch: Queued<T, R>[] = [];
    let weight = 0;
    for (let next = queue[0]; next !== undefined; next = queue[0]) {
      const more = options.weight(next.item);
      if (batch.length > 0 && weight + more > options.maxBatchWeight) break;
      batch.push(next);
      weight += more;
      queue.shift();
    }
    return batch;
  }

  async function commit(batch: Queued<T, R>[], retry: boolean): Promise<void> {
    let results: R[];
    try {
      results = await options.commit(
        batch.map((queued) => queued.item),
        retry,
      );
    } catch (error) {
      if (retry) {
        for (const queued of batch) queued.reject(error);
        return;
      }
      for (const queued of batch) await commit([queued], true);
      return;
    }
    batch.forEach((queued, i) => {
      queued.resolve(results[i] as R);
    });
  }

  function pump(): void {
    if (committing || queue.length === 0) return;
    committing = true;
    void commit(nextBatch(), false).finally(() => {
      committing = false;
      pump();
      if (!committing) for (const resolve of idleWaiters.splice(0)) resolve();
    });
  }

  return {
    submit: (item) =>
      new Promise((resolve, reject) => {
        queue.push({ item, resolve, reject });
        pump();
      }),
    drain: () =>
      !committing && queue.length === 0
        ? Promise.resolve()
        : new Promise((resolve) => idleWaiters.push(resolve)),
  };
}
