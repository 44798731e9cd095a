// The messages between `connect start`'s main thread (thread.ts) and its projector thread
// (worker.ts).
import type { Config } from '@connect/db';

/** What the main thread hands the projector thread. */
export interface ThreadData {
  /** The main thread's configuration, with the database it opened (the embedded one, by default). */
  config: Config & { databaseUrl: string };
  /** The ledger's verifier key, which the continuous audit opens each checkpoint with. */
  verifierKey: string;
}

export type Call = 'readiness' | 'status' | 'metrics' | 'close';

export interface CallMessage {
  id: number;
  call: Call;
}

export type ThreadMessage =
  /** Everything is open and the projections run. */
  { started: true } | { id: number; value: unknown } | { id: number; error: string };
