// When a failed webhook delivery is tried again: the Standard Webhooks schedule (immediately, then
// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h…), for a day; after that the delivery is dead.

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** The wait after the 1st, 2nd, … failed attempt; the last repeats. */
export const RETRY_DELAYS_MS: readonly number[] = [
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  10 * HOUR,
];

/** How long a delivery is retried, from its first attempt. */
export const RETRY_FOR_MS = 24 * HOUR;

/**
 * When to try again after `attempts` failed attempts, the first at `firstAttemptAt`, the last
 * ending `now`; 'dead' once a day has gone by since the first.
 */
export function nextAttempt(attempts: number, firstAttemptAt: Date, now: Date): Date | 'dead' {
  if (now.getTime() - firstAttemptAt.getTime() >= RETRY_FOR_MS) return 'dead';
  const delay = RETRY_DELAYS_MS[Math.min(Math.max(attempts, 1), RETRY_DELAYS_MS.length) - 1] ?? HOUR;
  return new Date(now.getTime() + delay);
}
