// Reconnection delays: exponential backoff with "full jitter". Each client
// waits a random time between 0 and the exponential ceiling, so thousands of
// clients dropped by one server restart come back spread out instead of in
// one storm.

export const DEFAULT_BACKOFF = Object.freeze({
  /** Ceiling of the first delay, in milliseconds. */
  base: 250,
  /** Largest ceiling, in milliseconds. */
  cap: 10_000,
  /** A connection that stayed open this long resets the attempt count. */
  resetAfter: 5_000,
});

/** The delay before reconnect attempt `attempt` (0 for the first). */
export function backoffDelay(attempt, { base, cap } = DEFAULT_BACKOFF, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * The delay before retrying a refused write or join ("equal jitter": at least
 * half the ceiling), so a rate-limited frame is not retried at once.
 */
export function retryDelay(attempt, { base, cap } = DEFAULT_BACKOFF, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.floor(ceiling / 2 + random() * (ceiling / 2));
}
