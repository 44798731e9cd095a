// What an error from pg or pg-pool says about the connection, rather than about the statement.
// The one place these are recognised: the HTTP answer (503), the query service's read pool and
// the projector's retries each build on them.

/**
 * What pg-pool says when no connection came within connectionTimeoutMillis: waiting in its queue
 * with every connection busy, or opening one (its own timer, or pg's, which has the same limit).
 */
const WAIT_RAN_OUT =
  /^(timeout exceeded when trying to connect|Connection terminated due to connection timeout|timeout expired$)/;

// PostgreSQL's connection exceptions (08…) and an administrator's shutdown or termination
// (57P01–03); and what the network and the resolver say when there is no server to reach.
const CONNECTION_LOST_CODES =
  /^(08|57P0[1-3]$|ECONNREFUSED$|ECONNRESET$|ETIMEDOUT$|EHOSTUNREACH$|ENETUNREACH$|EADDRNOTAVAIL$|ENOTFOUND$|EAI_AGAIN$|EPIPE$)/;
const CONNECTION_LOST_MESSAGES =
  /^(Connection terminated|connection terminated|Client has encountered a connection error)/;

/** The code pg or Node gives an error (a SQLSTATE such as 57014, or ECONNREFUSED), if any. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The pool gave no connection within its wait: every one busy, or a server that did not answer. */
export function isConnectionWaitOver(error: unknown): boolean {
  return error instanceof Error && WAIT_RAN_OUT.test(error.message);
}

/** No connection could be had, or the one in use was lost: nothing the statement itself caused. */
export function isConnectionFailure(error: unknown): boolean {
  if (isConnectionWaitOver(error)) return true;
  if (CONNECTION_LOST_CODES.test(errorCode(error) ?? '')) return true;
  // Connecting to a host name with several addresses (IPv6 and IPv4) fails with every attempt's
  // error in one AggregateError, whose own code is only the first attempt's.
  if (error instanceof AggregateError) return error.errors.some(isConnectionFailure);
  return error instanceof Error && CONNECTION_LOST_MESSAGES.test(error.message);
}
