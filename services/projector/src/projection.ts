import type { BodyCipher, Entry } from '@connect/ledger';
import type pg from 'pg';

/** A read-model table's name as the projection knows it → the table it writes (replay builds new ones). */
export type Tables = Readonly<Record<string, string>>;

export interface Projection {
  name: string;
  /** The read-model tables it owns: it alone writes them, and replay rebuilds them. */
  tables: readonly string[];
  /** The streams it reads (LIKE patterns); the entries of others only move its checkpoint on. */
  streams: readonly string[];
  /**
   * Least time from one batch's start to the next while the ledger keeps growing, for a projection
   * whose readers can wait longer than the projector's default (ProjectorOptions.batchSpacingMs).
   */
  batchSpacingMs?: number;
  /** Writes the rows these entries (consecutive, in index order) imply, inside the caller's transaction. */
  apply(client: pg.ClientBase, entries: Entry[], tables: Tables, cipher: BodyCipher): Promise<void>;
}

/** An entry the projection cannot apply: it stops there rather than skip it. */
export class ProjectionError extends Error {
  static of(index: number, cause: unknown): ProjectionError {
    const issues = (cause as { issues?: { path: PropertyKey[]; message: string }[] })?.issues;
    if (Array.isArray(issues)) {
      return new ProjectionError(
        index,
        issues.map((i) => `data.${i.path.join('.')}: ${i.message}`).join('; '),
        cause,
      );
    }
    return new ProjectionError(index, cause instanceof Error ? cause.message : String(cause), cause);
  }

  constructor(
    readonly index: number,
    readonly reason: string,
    /** What failed, kept so that a lost connection met while applying the entry is still retried. */
    cause?: unknown,
  ) {
    super(`entry ${index}: ${reason}`, { cause });
  }
}

/** The tables of a projection under their own names: what the live runner writes. */
export const liveTables = (projection: Projection): Tables =>
  Object.fromEntries(projection.tables.map((table) => [table, table]));
