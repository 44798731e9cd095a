/**
 * Calls that arrive while a group runs wait and run together in the next group, as the ledger
 * groups its appends: one round trip for many callers. `run` answers the group's items in order;
 * if it throws, every caller in the group gets the error. Items asked for in the same tick start
 * in the same group.
 */
export function groupedCalls<I, R>(
  run: (items: readonly I[]) => Promise<readonly R[]>,
): (item: I) => Promise<R> {
  let waiting: { item: I; resolve: (result: R) => void; reject: (error: unknown) => void }[] = [];
  let running = false;

  async function flush(): Promise<void> {
    running = true;
    await undefined;
    while (waiting.length > 0) {
      const group = waiting;
      waiting = [];
      try {
        const results = await run(group.map((call) => call.item));
        for (const [i, call] of group.entries()) call.resolve(results[i] as R);
      } catch (error) {
        for (const call of group) call.reject(error);
      }
    }
    running = false;
  }

  return (item) =>
    new Promise<R>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      if (!running) void flush();
    });
}
