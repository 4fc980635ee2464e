// Reconnect delays: exponential with jitter, so a server restart is not met by a thundering herd.

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { minMs: 250, maxMs: 10_000 };

/** Delay before retry number `attempt` (0-based): uniform in [minMs, minMs + minMs·2^attempt], capped at maxMs. */
export function backoffDelay(attempt: number, { minMs, maxMs }: BackoffOptions): number {
  const spread = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(Math.min(maxMs, minMs + Math.random() * spread));
}
