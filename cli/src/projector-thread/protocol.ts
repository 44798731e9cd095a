// The messages between `connect start`'s main thread (thread.ts) and its projector thread
// (worker.ts).
import type { Checkpoint } from '@connect/crypto';
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

/** A checkpoint the main thread's appender signed: the audit need not check that note's signature. */
export interface SignedMessage {
  signed: { checkpoint: Checkpoint; note: string };
}

/** What the main thread sends the projector thread. */
export type MainMessage = CallMessage | SignedMessage;

export type ThreadMessage =
  /** Everything is open and the projections run. */
  { started: true } | { id: number; value: unknown } | { id: number; error: string };
