/** Client configuration: options, environment defaults, and argument checks. */
import { createPublicKey } from 'node:crypto';
import { EventDbxConfigError } from './errors.js';
import type { RetryOptions, RetryPolicy } from './http.js';
import type { CheckpointStore } from './trust.js';

export const DEFAULT_URL = 'http://localhost:7070';

export interface ClientOptions {
  /** Server URL (default: `EVENTDBX_URL`, else http://localhost:7070). */
  readonly url?: string | undefined;
  /** Bearer token (default: `EVENTDBX_TOKEN`). */
  readonly token?: string | undefined;
  /** Retries of idempotent requests; `false` = never retry. */
  readonly retry?: RetryOptions | false | undefined;
  /**
   * Per-attempt timeout in ms: a whole number from 1 to 2^31−1 (about 24.8 days), or 0 or `Infinity`
   * for none (the default: none beyond fetch's own 300 s header and body timeouts). Anything else is
   * an `EventDbxConfigError`. A timeout costs an AbortSignal per request, which Node 20's fetch makes
   * expensive (about 50 µs of CPU, some 10% of a small request), hence off by default. Streams have
   * `idleTimeoutMs` instead.
   */
  readonly timeoutMs?: number | undefined;
  /**
   * Give appends without an `event_id` a random one, so that they too are safe to retry (the event's
   * `metadata.event_id` is then the client's). Default false: such appends are never retried.
   */
  readonly generateEventIds?: boolean | undefined;
  /**
   * Pinned Ed25519 public key (PEM) of the server's checkpoints: `eventdbx checkpoint public-key`.
   * Newlines may be written as a literal `\n` (as in a .env file), and lines may be indented (as under
   * a YAML key). Checked by the constructor: a key that is not an Ed25519 public key in PEM is an
   * `EventDbxConfigError`; an empty string pins nothing (as `undefined` does: `audit()` then needs
   * `trustOnFirstUse`). `verifyLedgerInclusion` verifies signed checkpoints with it too.
   */
  readonly publicKey?: string | undefined;
  /** Where `audit()` keeps the last verified checkpoint: a file path or a store of your own. */
  readonly trust?: string | CheckpointStore | undefined;
  /** Extra headers on every request. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** A fetch implementation (default: the global one). */
  readonly fetch?: typeof fetch | undefined;
}

/** Per-call options. */
export interface CallOptions {
  /** Abort the call: it rejects with `EventDbxCancelledError` (`EDBX_ERR_CANCELLED`, `cause` = the reason). */
  readonly signal?: AbortSignal | undefined;
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

/** Longest delay a Node timer can wait (2^31−1 ms, about 24.8 days); a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A timeout option in ms: 0 or `Infinity` = none (returned as 0), else a whole number from 1 to
 * MAX_TIMER_MS; anything else is a configuration error naming the option and the range.
 */
export function timeoutOption(v: number, name: string): number {
  if (v === 0 || v === Infinity) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_TIMER_MS)
    throw new EventDbxConfigError(
      `${name} must be a whole number of ms from 1 to ${MAX_TIMER_MS}, or 0 or Infinity for no timeout; got ${String(v)}`,
    );
  return v;
}

/** A delay option in ms: a whole number from 0 to MAX_TIMER_MS, or a configuration error. */
export function delayOption(v: number, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_TIMER_MS)
    throw new EventDbxConfigError(
      `${name} must be a whole number of ms from 0 to ${MAX_TIMER_MS}, got ${String(v)}`,
    );
  return v;
}

/**
 * The `retry` option merged with the defaults (a field that is absent or undefined takes the default),
 * each value checked; `false` = no retries.
 */
export function retryOption(r: RetryOptions | false | undefined, defaults: RetryPolicy): RetryPolicy {
  if (r === false) return { ...defaults, retries: 0 };
  if (r !== undefined && (typeof r !== 'object' || r === null))
    throw new EventDbxConfigError('retry must be an object ({ retries, minDelayMs, maxDelayMs }) or false');
  // A field given as undefined is absent, as with every option (a spread would copy the undefined).
  const given = Object.fromEntries(Object.entries(r ?? {}).filter(([, v]) => v !== undefined));
  const merged = { ...defaults, ...given } as RetryPolicy;
  if (typeof merged.retries !== 'number' || !Number.isSafeInteger(merged.retries) || merged.retries < 0)
    throw new EventDbxConfigError(
      `retry.retries must be a whole number >= 0 (0 = never retry), got ${String(merged.retries)}`,
    );
  delayOption(merged.minDelayMs, 'retry.minDelayMs');
  delayOption(merged.maxDelayMs, 'retry.maxDelayMs');
  return merged;
}

/**
 * The pinned key as a PEM that Node reads, or a configuration error: a literal `\n` (a PEM kept on
 * one line in a .env file or a secret) is read as a newline, and the key must be an Ed25519 public
 * key, never a private one (which Node would otherwise quietly turn into its public key).
 */
export function pinnedKey(raw: string): string {
  const what = 'publicKey must be the Ed25519 public key in PEM that `eventdbx checkpoint public-key` prints';
  if (typeof raw !== 'string') throw new EventDbxConfigError(`${what}, got ${typeof raw}`);
  // Each line trimmed: a PEM indented under a YAML key, or with CRLF line ends, reads as the key.
  const pem =
    raw
      .replace(/\\r\\n|\\n/g, '\n')
      .split('\n')
      .map((line) => line.trim())
      .join('\n')
      .trim() + '\n';
  if (/PRIVATE KEY/.test(pem))
    throw new EventDbxConfigError(`${what}, not a private key (keep that on the server only)`);
  if (!pem.startsWith('-----BEGIN PUBLIC KEY-----'))
    throw new EventDbxConfigError(
      `${what} (-----BEGIN PUBLIC KEY----- …), got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  let type: string | undefined;
  try {
    type = createPublicKey(pem).asymmetricKeyType;
  } catch (e) {
    throw new EventDbxConfigError(`${what}; this one cannot be read: ${(e as Error).message}`);
  }
  if (type !== 'ed25519') throw new EventDbxConfigError(`${what}; this one is an ${type} key`);
  return pem;
}

/**
 * Refuse payload numbers that would not be stored as written: NaN and ±Infinity (JSON has no form for
 * them; they would arrive as null), integers beyond ±(2^53−1), whose digits JavaScript has already
 * changed (9007199254740993 is 9007199254740992 by the time the SDK sees it), and BigInts, which JSON
 * cannot carry at all. `where` names the payload in the message, e.g. `events[2].payload`.
 */
export function checkPayload(payload: unknown, where: string): void {
  const seen = new Set<object>();
  const walk = (v: unknown, at: string): void => {
    // Unless the program taught BigInt to become JSON (a BigInt.prototype.toJSON), as JSON.stringify does.
    if (typeof v === 'bigint' && typeof (Object(v) as { toJSON?: unknown }).toJSON !== 'function')
      throw new EventDbxConfigError(
        `${at} is the BigInt ${String(v)}n, which JSON cannot carry: send its exact digits as a string (String(value))`,
      );
    if (typeof v === 'number') {
      if (!Number.isFinite(v))
        throw new EventDbxConfigError(
          `${at} is ${String(v)}, which JSON cannot carry (it would be sent as null): send a finite number, or a string`,
        );
      if (Number.isInteger(v) && !Number.isSafeInteger(v))
        throw new EventDbxConfigError(
          `${at} is ${String(v)}, an integer beyond ±(2^53−1) that JavaScript cannot hold exactly (its digits may already have changed): send the exact digits as a string`,
        );
      return;
    }
    // Nested values are not in the payload's type; checked anyway. A cycle is left to JSON.stringify.
    if (typeof v !== 'object' || v === null || seen.has(v)) return;
    seen.add(v);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`));
    else
      for (const [k, x] of Object.entries(v))
        walk(x, /^[A-Za-z_$][\w$]*$/.test(k) ? `${at}.${k}` : `${at}[${JSON.stringify(k)}]`);
  };
  walk(payload, where);
}
