import { errorCode, isConnectionFailure } from '@connect/db';
import type pg from 'pg';

// Errors that say nothing about the entries (the database went away, a lock timed out, no
// connection could be had): the runner retries them. Anything else stops the projection at the
// entry that caused it.
const TRANSIENT_CODES = /^(53|57P|40001|40P01|55P03)/;

/** The pool gave no connection, whatever the reason (a refused login too): nothing to do with entries. */
export class NoConnection extends Error {}

export async function connectFrom(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (error) {
    throw new NoConnection(`no database connection: ${(error as Error).message}`, { cause: error });
  }
}

/** Also when an error it wraps (its `cause`, as a ProjectionError keeps it) is transient. */
export function isTransient(error: unknown): boolean {
  // A few levels of causes, so that a chain that loops back on itself still ends.
  for (let depth = 0, at = error; depth < 4 && at !== undefined; depth++) {
    if (at instanceof NoConnection) return true;
    if (isConnectionFailure(at) || TRANSIENT_CODES.test(errorCode(at) ?? '')) return true;
    at = at instanceof Error ? at.cause : undefined;
  }
  return false;
}
