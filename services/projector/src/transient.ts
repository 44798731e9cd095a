import { errorCode, isConnectionFailure } from '@connect/db';

// Errors that say nothing about the entries (the database went away, a lock timed out): the
// runner retries them. Anything else stops the projection at the entry that caused it.
const TRANSIENT_CODES = /^(53|57P|40001|40P01|55P03)/;

/** Also when an error it wraps (its `cause`, as a ProjectionError keeps it) is transient. */
export function isTransient(error: unknown): boolean {
  // A few levels of causes, so that a chain that loops back on itself still ends.
  for (let depth = 0, at = error; depth < 4 && at !== undefined; depth++) {
    if (isConnectionFailure(at) || TRANSIENT_CODES.test(errorCode(at) ?? '')) return true;
    at = at instanceof Error ? at.cause : undefined;
  }
  return false;
}
