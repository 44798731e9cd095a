/** The most items one group takes unless told otherwise. */
export const DEFAULT_MAX_GROUP = 500;

export interface GroupedCallsOptions {
  /** The most items one group takes (DEFAULT_MAX_GROUP). */
  maxGroup?: number;
  /**
   * When a group throws, run it again item by item so only the culprit's caller gets the error
   * (for items that can fail on their own); otherwise every caller in the group gets it.
   */
  isolateFailures?: boolean;
}

/**
 * Calls that arrive while a group runs wait and run together in the next, as the ledger groups its
 * appends: one round trip for many callers. `run` answers the group's items in order. Items asked
 * for in the same tick start in the same group.
 */
export function groupedCalls<I, R>(
  run: (items: readonly I[]) => Promise<readonly R[]>,
  { maxGroup = DEFAULT_MAX_GROUP, isolateFailures = false }: GroupedCallsOptions = {},
): (item: I) => Promise<R> {
  if (!(maxGroup >= 1)) throw new RangeError('maxGroup must be at least 1');
  type Call = { item: I; resolve: (result: R) => void; reject: (error: unknown) => void };
  let waiting: Call[] = [];
  let running = false;

  async function settle(group: Call[]): Promise<void> {
    try {
      const results = await run(group.map((call) => call.item));
      for (const [i, call] of group.entries()) call.resolve(results[i] as R);
    } catch (error) {
      // Alone and side by side: a group that fails as a whole (the database away) fails as fast.
      if (isolateFailures && group.length > 1) await Promise.all(group.map((call) => settle([call])));
      else for (const call of group) call.reject(error);
    }
  }

  async function flush(): Promise<void> {
    running = true;
    await undefined;
    while (waiting.length > 0) {
      const group = waiting.slice(0, maxGroup);
      waiting = waiting.slice(maxGroup);
      await settle(group);
    }
    running = false;
  }

  return (item) =>
    new Promise<R>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      if (!running) void flush();
    });
}
