// The first pass reads and maps commitments on a thread of its own (mapper-thread.ts), so the main
// thread is left to append: the import is bound by one core's work, and reading the source's rows
// and deciding their events is about a fifth of it. The thread reads the very snapshot the import
// reads (a shared snapshot), so what it maps is what the users and types were imported from.
import { Worker } from 'node:worker_threads';
import type { FileFacts, PlannedEvent } from './map-commitments.ts';
import type { SharedSnapshot, SourceCommitmentRows, SourceDocument } from './source.ts';

/** A new stream's commitment, mapped: its decision, with what storing its documents needs. */
export interface MappedCommitment {
  id: string;
  documents: SourceDocument[];
  /** By commitment_documents id. */
  files: Map<string, FileFacts>;
  decision:
    | { outcome: 'import'; events: PlannedEvent[]; reasons: string[] }
    | { outcome: 'failed'; reasons: string[] };
}

/** A commitment to import: its source rows, or mapped already as a new stream. */
export type CommitmentInput = SourceCommitmentRows | MappedCommitment;

export const inputId = (input: CommitmentInput) => ('decision' in input ? input.id : input.commitment.id);

export interface MapperStart {
  snapshot: SharedSnapshot;
  storageDir: string | undefined;
  /** Type keys by source type id, and the users imported: what mapping names. */
  typeKeys: ReadonlyMap<string, string>;
  users: ReadonlySet<string>;
}

/** Maps and sets go as they are: a message is copied by structured clone. */
export type ToMapper =
  | ({ kind: 'start' } & MapperStart)
  | { kind: 'map'; request: number; ids: string[]; existing: ReadonlySet<string> }
  | { kind: 'stop' };

export type FromMapper =
  | { request: number; commitments: CommitmentInput[] }
  | { request: number; error: string };

export interface Mapper {
  /** Starts reading and mapping; map() asks only after this. */
  begin(start: MapperStart): void;
  /**
   * The source's commitments of `ids`, in that order (those it lacks left out): mapped, or as
   * rows for those of `existing` (streams the ledger has, which are brought up to date instead).
   */
  map(ids: string[], existing: ReadonlySet<string>): Promise<CommitmentInput[]>;
  /** Ends the thread and its connection. */
  close(): Promise<void>;
}

export function spawnMapper(): Mapper {
  const worker = new Worker(new URL('./mapper-thread-entry.js', import.meta.url));
  const waiting = new Map<number, { resolve(rows: CommitmentInput[]): void; reject(error: Error): void }>();
  let requests = 0;
  let ended: Error | undefined;
  const end = (error: Error) => {
    ended ??= error;
    for (const { reject } of waiting.values()) reject(ended);
    waiting.clear();
  };
  worker.on('message', (message: FromMapper) => {
    const request = waiting.get(message.request);
    waiting.delete(message.request);
    if ('error' in message) request?.reject(new Error(message.error));
    else request?.resolve(message.commitments);
  });
  worker.on('error', end);
  worker.on('messageerror', end);
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      end(new Error('the mapping thread stopped'));
      resolve();
    }),
  );
  return {
    begin(start) {
      worker.postMessage({ kind: 'start', ...start } satisfies ToMapper);
    },
    map(ids, existing) {
      if (ended) return Promise.reject(ended);
      const request = ++requests;
      return new Promise((resolve, reject) => {
        waiting.set(request, { resolve, reject });
        worker.postMessage({ kind: 'map', request, ids, existing } satisfies ToMapper);
      });
    },
    async close() {
      if (!ended) worker.postMessage({ kind: 'stop' } satisfies ToMapper);
      // A thread that does not stop of itself soon is stopped.
      const timer = setTimeout(() => void worker.terminate(), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
