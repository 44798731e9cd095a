// Work the delivery worker repeats on a timer besides at start (waiting account mail put back into
// the queue, scheduled reminders moved into it): a round asked for while one is under way joins
// it rather than running twice, and stopping waits for the round in hand.
export interface Rounds {
  /** Runs a round, or joins the one under way. */
  run(): Promise<void>;
  /** Runs a round every `everyMs` from now on (already repeating: nothing). */
  repeat(): void;
  /** Stops repeating and waits for a round under way. */
  stop(): Promise<void>;
}

export function rounds(
  round: () => Promise<void>,
  options: { everyMs: number; onError: (error: Error) => void },
): Rounds {
  let timer: NodeJS.Timeout | undefined;
  let underWay: Promise<void> | undefined;
  const run = () =>
    (underWay ??= round().finally(() => {
      underWay = undefined;
    }));
  return {
    run,
    repeat() {
      timer ??= setInterval(() => run().catch(options.onError), options.everyMs).unref();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await underWay?.catch(() => undefined);
    },
  };
}
