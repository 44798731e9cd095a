// Errors that say nothing about the entries (the database went away, a lock timed out): the
// runner retries them. Anything else stops the projection at the entry that caused it.
const TRANSIENT_CODES = /^(08|53|57P|40001|40P01|55P03)/;
const TRANSIENT_MESSAGES =
  /connection terminated|ECONNREFUSED|ECONNRESET|EPIPE|timeout exceeded when trying to connect|Client has encountered a connection error/i;

export function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string' && TRANSIENT_CODES.test(code)) return true;
  return error instanceof Error && TRANSIENT_MESSAGES.test(error.message);
}
