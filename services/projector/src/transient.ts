import { errorCode, isConnectionFailure } from '@connect/db';

// Errors that say nothing about the entries (the database went away, a lock timed out): the
// runner retries them. Anything else stops the projection at the entry that caused it.
const TRANSIENT_CODES = /^(53|57P|40001|40P01|55P03)/;

export function isTransient(error: unknown): boolean {
  return isConnectionFailure(error) || TRANSIENT_CODES.test(errorCode(error) ?? '');
}
