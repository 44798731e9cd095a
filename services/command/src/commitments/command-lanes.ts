// Commands on one commitment, one at a time within this process: each is decided on the state the
// previous one left instead of racing it to the same version and losing. Commands on different
// commitments still run side by side, and other processes are still met by the version check.
export interface CommandLanes {
  run<T>(commitmentId: string, work: () => Promise<T>): Promise<T>;
}

export function commandLanes(): CommandLanes {
  const tails = new Map<string, Promise<void>>();
  return {
    run(commitmentId, work) {
      const result = (tails.get(commitmentId) ?? Promise.resolve()).then(work);
      const tail = result.then(
        () => undefined,
        () => undefined,
      );
      tails.set(commitmentId, tail);
      void tail.then(() => {
        if (tails.get(commitmentId) === tail) tails.delete(commitmentId);
      });
      return result;
    },
  };
}
