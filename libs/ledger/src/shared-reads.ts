// Reads that share round trips: at most `maxInFlight` statements at a time; what is asked for
// meanwhile waits, then goes together in one statement (up to `maxJoined` asks). Alone, an ask goes
// at once; under many concurrent asks, one round trip answers many, so the database and the pool
// see a few statements instead of one per ask.

export interface SharedReads<Db, Item, Answer> {
  /** The answer of the statement that read `items` (with those of the asks that went with them). */
  read(db: Db, items: readonly Item[]): Promise<Answer>;
}

interface Ask<Db, Item, Answer> {
  db: Db;
  items: readonly Item[];
  resolve: (answer: Answer) => void;
  reject: (error: unknown) => void;
}

export function sharedReads<Db, Item, Answer>(
  run: (db: Db, items: Item[]) => Promise<Answer>,
  { maxInFlight, maxJoined = 64 }: { maxInFlight: number; maxJoined?: number },
): SharedReads<Db, Item, Answer> {
  for (const [name, value] of Object.entries({ maxInFlight, maxJoined }))
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number ≥ 1`);
  let waiting: Ask<Db, Item, Answer>[] = [];
  let inFlight = 0;

  function start(): void {
    while (inFlight < maxInFlight) {
      const [first] = waiting;
      if (!first) return;
      // One statement per database handle (there is one, except in tests that wrap it).
      const joined = waiting.filter((ask) => ask.db === first.db).slice(0, maxJoined);
      const items = joined.flatMap((ask) => ask.items);
      waiting = waiting.filter((ask) => !joined.includes(ask));
      inFlight++;
      // A run that throws at once rejects like one that fails later, and frees its turn all the same.
      new Promise<Answer>((resolve) => resolve(run(first.db, items)))
        .then(
          (answer) => {
            for (const ask of joined) ask.resolve(answer);
          },
          (error: unknown) => {
            for (const ask of joined) ask.reject(error);
          },
        )
        .finally(() => {
          inFlight--;
          start();
        });
    }
  }

  return {
    read: (db, items) =>
      new Promise((resolve, reject) => {
        waiting.push({ db, items, resolve, reject });
        start();
      }),
  };
}
