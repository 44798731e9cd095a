import type { EntryHeader, JsonObject } from '@connect/crypto';

/** An entry as stored and served: the header, the body (null once redacted) and the leaf hash. */
export interface Entry extends EntryHeader {
  data: JsonObject | null;
  /** base64 of the 16-byte salt; null once redacted. */
  salt: string | null;
  redacted: boolean;
  /** base64 of SHA-256(0x00 ‖ JCS(header)). */
  leafHash: string;
}

export interface NewEvent {
  /** Event id (UUID); generated when absent. */
  id?: string;
  type: string;
  /** Version of the event type's data schema; 1 when absent. */
  schema?: number;
  data: JsonObject;
  meta?: JsonObject;
}

/** A stream version number, or: the stream must not exist yet, or: no check. */
export type ExpectedVersion = number | 'no_stream' | 'any';

export interface AppendRequest {
  stream: string;
  expectedVersion: ExpectedVersion;
  events: NewEvent[];
  actor: string | null;
  /** A retry with the same key returns the first append's entries and appends nothing. */
  idempotencyKey?: string;
}

export type AppendResult =
  | { outcome: 'appended'; entries: Entry[]; streamVersion: number }
  | { outcome: 'replayed'; entries: Entry[]; streamVersion: number }
  | { outcome: 'version_conflict'; expectedVersion: ExpectedVersion; actualVersion: number }
  | { outcome: 'idempotency_key_reused'; idempotencyKey: string }
  | { outcome: 'duplicate_event_id'; eventId: string };

export class AppendValidationError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}
