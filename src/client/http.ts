/**
 * The SDK's HTTP layer over the built-in `fetch`: bearer auth, JSON bodies, problem+json errors mapped
 * to typed errors, and retries with exponential backoff and jitter. Only requests that are safe to
 * send twice are retried (reads, and appends whose every event carries an `event_id`), and only on
 * connection errors and 502, 503 and 504 (the statuses of a proxy or gateway whose upstream is away,
 * as `subscribe()` treats them too); an append without an id is never re-sent, because its first
 * attempt may have been applied. A 2xx body is returned only once it has the shape of its type
 * (src/protocol/shapes.ts). An error of a write whose attempts got no answer counts them
 * (`unanswered`) and, for an idempotent one, says how to learn whether it was applied.
 */
import { type Shape, isProblem } from '../protocol/index.js';
import { onAbort } from './abort.js';
import {
  EventDbxApiError,
  EventDbxCancelledError,
  EventDbxConfigError,
  EventDbxConnectionError,
  EventDbxResponseError,
  type Unanswered,
} from './errors.js';
import { urlSafe } from './options.js';

export interface RetryOptions {
  /**
   * Retries after the first attempt (default 6; 0 = never retry). With the default delays they wait
   * 4.9–9.75 s in all, enough to ride out an `eventdbx restart` (1–3 s of refused connections).
   */
  readonly retries?: number | undefined;
  /** First backoff delay in ms (default 250); doubles each retry, with jitter. */
  readonly minDelayMs?: number | undefined;
  /**
   * Cap of one backoff delay in ms (default 3000). A Retry-After (of a 502, 503 or 504) is honoured
   * up to this cap.
   */
  readonly maxDelayMs?: number | undefined;
}

/** The retry options in force: every one set. */
export type RetryPolicy = { readonly [K in keyof RetryOptions]-?: Exclude<RetryOptions[K], undefined> };

export interface TransportOptions {
  readonly url: string;
  readonly token: string | undefined;
  readonly fetch: typeof fetch;
  readonly retry: RetryPolicy;
  /** Per-attempt timeout in ms; 0 = none. */
  readonly timeoutMs: number;
  readonly headers: Readonly<Record<string, string>>;
}

export type Query = Readonly<Record<string, string | number | undefined>>;

export interface RequestOptions {
  readonly method?: 'GET' | 'POST' | 'PATCH' | 'DELETE' | undefined;
  readonly query?: Query | undefined;
  readonly body?: unknown | undefined;
  /** Safe to send twice: retried on connection errors and 502, 503, 504. */
  readonly idempotent: boolean;
  readonly signal?: AbortSignal | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Parse the body as JSON (default) or return it as text. */
  readonly as?: 'json' | 'text' | undefined;
  /** What a 2xx JSON body must look like; another body is `EDBX_ERR_UNEXPECTED_RESPONSE`. */
  readonly shape?: Shape<unknown> | undefined;
  /**
   * A non-2xx status whose body, when it has this shape, is an answer rather than an error, and is
   * returned at once, never retried: /health's 503 `failing`.
   */
  readonly answer?: { readonly status: number; readonly shape: Shape<unknown> } | undefined;
}

export interface HttpResponse<T> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
  /**
   * Earlier attempts that got no answer (a dropped connection, a timeout, a gateway's 502 or 504):
   * they may have been applied. A refused connection is not one: nothing was sent.
   */
  readonly unanswered: number;
}

/** Statuses that say "unavailable for now" (a gateway's upstream is away, or the server is stopping). */
const TRANSIENT = new Set([502, 503, 504]);

/**
 * The server's 503s that come before it does anything with a request (a stopping server; a body over
 * its budget of request bodies held): safe to send again, with event ids or without.
 */
const REFUSED_UNDONE = new Set<string>(['EDBX_ERR_SHUTTING_DOWN', 'EDBX_ERR_BODY_BUFFER_FULL']);
const refusedUndone = (status: number, text: string): boolean => {
  if (status !== 503) return false;
  const body = jsonOrUndefined(text);
  return isProblem(body) && REFUSED_UNDONE.has(body.code);
};

/**
 * What a failed request that is not safe to retry adds to its error: the server may have applied it.
 */
function unknownOutcome(method: string, path: string, idempotent: boolean): string {
  if (method === 'GET' || idempotent) return '';
  return `; the outcome is unknown${
    /\/events$|\/v1\/transactions$/.test(path)
      ? ' (send an event_id to make appends safe to retry)'
      : '; check before retrying'
  }`;
}

/**
 * What the error of an idempotent write (every event has an `event_id`) adds once attempts of it got
 * no answer: any of them may have been applied, and sending it again with the same ids tells, since
 * the server answers an already appended event with 200 and the original record.
 */
function mayHaveApplied(path: string, unanswered: number): string {
  if (unanswered === 0) return '';
  const [ids, records] = /\/v1\/transactions$/.test(path) ? ['event_ids', 'records'] : ['event_id', 'record'];
  return `; ${unanswered} attempt${unanswered === 1 ? '' : 's'} got no answer, so it may have been applied: send it again with the same ${ids} to learn the outcome (if it was applied, the answer is HTTP 200 with the original ${records}, duplicate: true)`;
}

/**
 * Failures of an attempt that never reached the server: no connection was made (refused, a name
 * that does not resolve, the connect timeout), so nothing was sent and nothing can have been applied.
 * Any other failure may have come after the request was sent.
 */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
function neverSent(e: unknown): boolean {
  const code = (e as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return typeof code === 'string' && NOT_SENT.has(code);
}

/**
 * A refusal that answers for the earlier attempts too: they sent the same request, and the server
 * answers a write it already holds with 200 before it checks versions, archives or schemas, so a 4xx
 * about the request says that none of them was applied. 401, 403 and 429 (a token revoked or spent,
 * a rate limit) are about the caller at that moment, and say nothing about the earlier attempts.
 */
const settles = (status: number): boolean =>
  status >= 400 && status < 500 && status !== 401 && status !== 403 && status !== 429;

/**
 * Delays of 125–250, 250–500, 500–1000, 1000–2000, then twice 1500–3000 ms (capped): 4.9–9.75 s in
 * all, so an idempotent request outlasts a server restart rather than failing in the middle of it.
 */
export const DEFAULT_RETRY: RetryPolicy = { retries: 6, minDelayMs: 250, maxDelayMs: 3000 };

/** Backoff before retry `attempt` (0-based): half fixed, half random ("equal jitter"). */
export function backoff(attempt: number, r: RetryPolicy): number {
  const ceiling = Math.min(r.maxDelayMs, r.minDelayMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Wait `ms`, or reject with `EDBX_ERR_CANCELLED` (cause: the signal's reason) when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new EventDbxCancelledError(signal.reason));
    const timer = setTimeout(() => {
      unwatch();
      resolve();
    }, ms);
    const unwatch = signal
      ? onAbort(signal, () => {
          clearTimeout(timer);
          reject(new EventDbxCancelledError(signal.reason));
        })
      : () => {};
  });
}

function queryString(q: Query | undefined): string {
  if (!q) return '';
  let out = '';
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    out += `${out ? '&' : '?'}${encodeURIComponent(k)}=${encodeURIComponent(urlSafe(String(v)))}`;
  }
  return out;
}

const describe = (e: unknown): string => {
  const cause = (e as { cause?: { code?: string; message?: string } } | null | undefined)?.cause;
  const base = e instanceof Error ? e.message : String(e);
  return cause?.code ? `${base} (${cause.code})` : cause?.message ? `${base} (${cause.message})` : base;
};

function retryAfterMs(res: Response): number | undefined {
  const h = res.headers.get('retry-after');
  if (!h) return undefined;
  const secs = Number(h);
  return Number.isFinite(secs) && secs >= 0 ? secs * 1000 : undefined;
}

export class Transport {
  readonly #o: TransportOptions;
  readonly #auth: Record<string, string>;

  constructor(o: TransportOptions) {
    this.#o = o;
    this.#auth = { ...o.headers, ...(o.token ? { authorization: `Bearer ${o.token}` } : {}) };
  }

  get url(): string {
    return this.#o.url;
  }

  /** One request with retries as allowed; throws typed errors. */
  async request<T>(path: string, o: RequestOptions): Promise<HttpResponse<T>> {
    const method = o.method ?? (o.body === undefined ? 'GET' : 'POST');
    const url = this.#o.url + path + queryString(o.query);
    const headers: Record<string, string> = { ...this.#auth, accept: 'application/json', ...o.headers };
    let body: string | undefined;
    if (o.body !== undefined) {
      headers['content-type'] = 'application/json';
      try {
        body = JSON.stringify(o.body);
      } catch (e) {
        // A BigInt or a cycle in a payload: a bad argument, found before anything is sent.
        throw new EventDbxConfigError(`the request body cannot be sent as JSON: ${(e as Error).message}`);
      }
    }
    const retries = o.idempotent ? this.#o.retry.retries : 0;
    const init: RequestInit = { method, headers, body };
    // Attempts sent that got no answer: each may have been applied (`resent`, the error's `unanswered`).
    let unanswered = 0;
    const after = (): Unanswered =>
      method === 'GET'
        ? { unanswered: 0, note: '' }
        : { unanswered, note: o.idempotent ? mayHaveApplied(path, unanswered) : '' };
    const pause = async (ms: number): Promise<void> => {
      try {
        await sleep(ms, o.signal);
      } catch {
        throw new EventDbxCancelledError(o.signal?.reason, after());
      }
    };
    for (let attempt = 0; ; attempt++) {
      if (o.signal?.aborted) throw new EventDbxCancelledError(o.signal.reason, after());
      let res: Response;
      let text: string;
      try {
        ({ res, text } = await this.#attempt(url, init, o.signal));
      } catch (e) {
        if (!neverSent(e)) unanswered++;
        if (o.signal?.aborted) throw new EventDbxCancelledError(o.signal.reason, after());
        if (attempt < retries) {
          await pause(backoff(attempt, this.#o.retry));
          continue;
        }
        const { note, unanswered: n } = after();
        // No attempt reached the server (its connection refused): nothing was applied, and it says so.
        const outcome =
          n === 0 && method !== 'GET' ? '; it never reached the server: nothing was applied' : '';
        throw new EventDbxConnectionError(
          `${method} ${path} failed: ${describe(e)}${outcome || unknownOutcome(method, path, o.idempotent)}${note}`,
          e,
          undefined,
          n,
        );
      }
      if (res.status === o.answer?.status) {
        const body = jsonOrUndefined(text);
        if (o.answer.shape.check(body) === undefined)
          return { status: res.status, body: body as T, headers: res.headers, unanswered };
      }
      // A gateway's 502/504 may come after the server applied the request (it timed out, or the
      // connection dropped before the answer): like an attempt that got no answer.
      if (res.status === 502 || res.status === 504) unanswered++;
      const allowed = retries > 0 || !refusedUndone(res.status, text) ? retries : this.#o.retry.retries;
      if (TRANSIENT.has(res.status) && attempt < allowed) {
        const wait = retryAfterMs(res) ?? backoff(attempt, this.#o.retry);
        await pause(Math.min(this.#o.retry.maxDelayMs, wait));
        continue;
      }
      if ((res.status === 502 || res.status === 504) && !isProblem(jsonOrUndefined(text))) {
        const { note, unanswered: n } = after();
        throw new EventDbxConnectionError(
          `${method} ${path} failed: ${gateway(res.status, text)}${unknownOutcome(method, path, o.idempotent)}${note}`,
          undefined,
          res.status,
          n,
        );
      }
      return {
        ...parse<T>(res, text, o.as ?? 'json', o.shape, `${method} ${path}`, after()),
        unanswered,
      };
    }
  }

  /**
   * One attempt: the response and its body, within `timeoutMs`. No signal reaches fetch unless a
   * timeout or a caller's signal needs one (fetch's signal handling is costly); and then an
   * AbortController with a timer, not `AbortSignal.timeout()`, which is slower still.
   */
  async #attempt(
    url: string,
    init: RequestInit,
    user: AbortSignal | undefined,
  ): Promise<{ res: Response; text: string }> {
    const ms = this.#o.timeoutMs;
    if (ms <= 0 && !user) {
      const res = await this.#o.fetch(url, init);
      return { res, text: await res.text() };
    }
    const ctl = new AbortController();
    const timer =
      ms > 0
        ? setTimeout(
            () => ctl.abort(new EventDbxConnectionError(`no answer within ${ms} ms (timeoutMs)`)),
            ms,
          )
        : undefined;
    // One listener on the caller's signal however many calls share it (see abort.ts).
    const unwatch = user ? onAbort(user, () => ctl.abort(user.reason)) : () => {};
    try {
      const res = await this.#o.fetch(url, { ...init, signal: ctl.signal });
      return { res, text: await res.text() };
    } finally {
      clearTimeout(timer);
      unwatch();
    }
  }

  /**
   * Open a streaming GET (one attempt): resolves with the response once its headers arrived with a
   * 2xx status; maps anything else to a typed error. The caller reads (and cancels) the body.
   */
  async open(
    path: string,
    o: { query?: Query; headers?: Record<string, string>; signal: AbortSignal },
  ): Promise<Response> {
    const url = this.#o.url + path + queryString(o.query);
    let res: Response;
    try {
      res = await this.#o.fetch(url, { headers: { ...this.#auth, ...o.headers }, signal: o.signal });
    } catch (e) {
      if (o.signal.aborted && !(o.signal.reason instanceof EventDbxConnectionError)) throw o.signal.reason;
      throw new EventDbxConnectionError(`GET ${path} failed: ${describe(e)}`, e);
    }
    if (res.ok) return res;
    let text = '';
    try {
      text = await res.text();
    } catch (e) {
      throw new EventDbxConnectionError(`GET ${path} failed while reading the error: ${describe(e)}`, e);
    }
    return failure(res, text);
  }
}

function parse<T>(
  res: Response,
  text: string,
  as: 'json' | 'text',
  shape: Shape<unknown> | undefined,
  what: string,
  after: Unanswered,
): Omit<HttpResponse<T>, 'unanswered'> {
  if (!res.ok) return failure(res, text, after);
  if (as === 'text') return { status: res.status, body: text as T, headers: res.headers };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new EventDbxResponseError(`HTTP ${res.status}: the body is not JSON`, res.status, e);
  }
  const wrong = shape?.check(body);
  if (shape && wrong !== undefined) {
    throw new EventDbxResponseError(
      `${what} answered HTTP ${res.status} with something other than ${shape.name}: ${wrong}`,
      res.status,
    );
  }
  return { status: res.status, body: body as T, headers: res.headers };
}

function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const gateway = (status: number, text: string): string =>
  `a gateway in front of the server answered HTTP ${status}: ${text.slice(0, 200) || '(empty body)'}`;

/**
 * A non-2xx answer as a typed error: the problem document's code, or an unexpected-response error;
 * `after` (of a write whose earlier attempts got no answer) adds their count and what to do.
 */
function failure(res: Response, text: string, after: Unanswered = { unanswered: 0, note: '' }): never {
  const parsed = jsonOrUndefined(text);
  if (isProblem(parsed))
    throw new EventDbxApiError(parsed, settles(parsed.status) ? { unanswered: 0, note: '' } : after);
  // A 502/503/504 without a problem document (a proxy, a server still starting or stopping) means
  // unavailable, like a refused connection: retried the same way, then reported as a connection error.
  if (res.status === 502 || res.status === 504)
    throw new EventDbxConnectionError(
      gateway(res.status, text) + after.note,
      undefined,
      res.status,
      after.unanswered,
    );
  if (res.status === 503) {
    throw new EventDbxConnectionError(
      `the server is unavailable (HTTP 503): ${text.slice(0, 200) || '(empty body)'}${after.note}`,
      undefined,
      503,
      after.unanswered,
    );
  }
  throw new EventDbxResponseError(
    `HTTP ${res.status} without a problem document: ${text.slice(0, 200) || '(empty body)'}${after.note}`,
    res.status,
    undefined,
    after.unanswered,
  );
}
