/** Retry delays: exponential from `backoff_ms`, capped at `backoff_max_ms`, with "equal jitter". */
import type { DeliveryOptions } from './types.js';

/**
 * Delay before retry number `attempt` (1 = first retry): half the exponential delay plus a random
 * share of the other half, so many plugins failing together do not retry in lockstep.
 *
 * @example
 * backoffDelay(3, { backoff_ms: 100, backoff_max_ms: 10_000 }) // between 200 and 400
 */
export function backoffDelay(
  attempt: number,
  o: Pick<DeliveryOptions, 'backoff_ms' | 'backoff_max_ms'>,
  random: () => number = Math.random,
): number {
  const exp = Math.min(o.backoff_max_ms, o.backoff_ms * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(exp / 2 + (random() * exp) / 2);
}
