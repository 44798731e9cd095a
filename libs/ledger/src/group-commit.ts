// Group commit: items queue up while a batch commits, and the next batch takes everything queued
// (up to a weight). A commit may say its batch is `sent` as soon as its write is on its way; then
// the next batch is begun early, planned while that one commits, once half a batch's weight has
// queued. A smaller one waits for the commit, gathering what arrives meanwhile: a batch costs
// about the same whatever its size, so many small ones would cost more than they save.

export interface GroupCommitOptions<T, R> {
  /** Most weight one batch takes (a single heavier item still goes alone). */
  maxBatchWeight: number;
  weight(item: T): number;
  /**
   * Commits a batch: one result per item, in order. It may call `sent` once the batch is written
   * and only its outcome is awaited, to begin the next. When it throws, each item is committed
   * again alone with `retry` true, so only the culprit fails; a retry that throws rejects its item.
   */
  commit(batch: T[], retry: boolean, sent: () => void): Promise<R[]>;
  /**
   * Whether an error is one no item caused (no database connection came): then every item of the
   * batch is rejected with it at once, rather than each waiting out the same failure alone.
   */
  failsWholeBatch?(error: unknown): boolean;
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
  let queuedWeight = 0;
  /** A batch is begun and not yet sent: the next waits. */
  let beginning = false;
  /** Batches begun and not yet settled. */
  let active = 0;
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
    queuedWeight -= weight;
    return batch;
  }

  async function commit(batch: Queued<T, R>[], retry: boolean, sent: () => void): Promise<void> {
    let results: R[];
    try {
      results = await options.commit(
        batch.map((queued) => queued.item),
        retry,
        sent,
      );
    } catch (error) {
      if (retry || options.failsWholeBatch?.(error)) {
        for (const queued of batch) queued.reject(error);
        return;
      }
      for (const queued of batch) await commit([queued], true, () => undefined);
      return;
    }
    batch.forEach((queued, i) => {
      queued.resolve(results[i] as R);
    });
  }

  function pump(): void {
    if (beginning || queue.length === 0) return;
    if (active > 0 && queuedWeight < options.maxBatchWeight / 2) return;
    beginning = true;
    active++;
    let isSent = false;
    const sent = () => {
      if (isSent) return;
      isSent = true;
      beginning = false;
      pump();
    };
    void commit(nextBatch(), false, sent).finally(() => {
      active--;
      if (isSent) pump();
      else sent();
      if (active === 0 && queue.length === 0) for (const resolve of idleWaiters.splice(0)) resolve();
    });
  }

  return {
    submit: (item) =>
      new Promise((resolve, reject) => {
        queue.push({ item, resolve, reject });
        queuedWeight += options.weight(item);
        pump();
      }),
    drain: () =>
      active === 0 && queue.length === 0
        ? Promise.resolve()
        : new Promise((resolve) => idleWaiters.push(resolve)),
  };
}
