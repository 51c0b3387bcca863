/** Client configuration: options, environment defaults, and argument checks. */
import { EventDbxConfigError } from './errors.js';
import type { RetryOptions } from './http.js';
import type { CheckpointStore } from './trust.js';

export const DEFAULT_URL = 'http://localhost:7070';

export interface ClientOptions {
  /** Server URL (default: `EVENTDBX_URL`, else http://localhost:7070). */
  readonly url?: string;
  /** Bearer token (default: `EVENTDBX_TOKEN`). */
  readonly token?: string;
  /** Retries of idempotent requests; `false` = never retry. */
  readonly retry?: RetryOptions | false;
  /**
   * Per-attempt timeout in ms (default 0 = none beyond fetch's own 300 s header and body timeouts).
   * A timeout costs an AbortSignal per request, which Node 20's fetch makes expensive (about 50 µs of
   * CPU, some 10% of a small request), hence off by default. Streams have `idleTimeoutMs` instead.
   */
  readonly timeoutMs?: number;
  /**
   * Give appends without an `event_id` a random one, so that they too are safe to retry (the event's
   * `metadata.event_id` is then the client's). Default false: such appends are never retried.
   */
  readonly generateEventIds?: boolean;
  /** Pinned Ed25519 public key (PEM) of the server's checkpoints: `eventdbx checkpoint public-key`. */
  readonly publicKey?: string;
  /** Where `audit()` keeps the last verified checkpoint: a file path or a store of your own. */
  readonly trust?: string | CheckpointStore;
  /** Extra headers on every request. */
  readonly headers?: Readonly<Record<string, string>>;
  /** A fetch implementation (default: the global one). */
  readonly fetch?: typeof fetch;
}

/** Per-call options. */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

/** The server URL without a trailing slash; refuses anything but http(s) URLs. */
export function baseUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new EventDbxConfigError(`url ${JSON.stringify(raw)} is not a URL (e.g. http://localhost:7070)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new EventDbxConfigError(`url ${JSON.stringify(raw)} must be http:// or https://`);
  if (u.search || u.hash)
    throw new EventDbxConfigError(`url ${JSON.stringify(raw)} must not have a query or fragment`);
  return u.href.replace(/\/+$/, '');
}

/** A whole number >= `min`, or a configuration error naming the argument. */
export function whole(v: number, name: string, min: number): number {
  if (!Number.isSafeInteger(v) || v < min)
    throw new EventDbxConfigError(`${name} must be a whole number >= ${min}, got ${String(v)}`);
  return v;
}

/**
 * A string that can be sent in a URL, or a configuration error: one with a lone surrogate (half of
 * a UTF-16 pair, e.g. a string cut in the middle of an emoji) has no UTF-8 form.
 */
export function urlSafe(v: string): string {
  if (!v.isWellFormed())
    throw new EventDbxConfigError(
      `${JSON.stringify(v).slice(0, 80)} cannot be sent in a URL: it has a lone surrogate (not well-formed Unicode)`,
    );
  return v;
}
