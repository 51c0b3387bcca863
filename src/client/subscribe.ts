/**
 * `client.subscribe()`: the event stream (`GET /v1/events/stream`, Server-Sent Events) as an async
 * iterator that reconnects on its own. It resumes after the last position it saw (`from` and
 * `Last-Event-ID`), drops anything at or below it, and so yields every event exactly once, in position
 * order, across dropped connections and server restarts. A connection that goes silent (no event and
 * no heartbeat) for `idleTimeoutMs` is treated as dead. The server's `caught-up` block, once per
 * connection, becomes the `onCaughtUp` call.
 */
import {
  type EventRecord,
  PATHS,
  SSE_CONTENT_TYPE,
  STREAM_ERROR,
  STREAM_EVENT,
  SHAPES,
  STREAM_CAUGHT_UP,
  SseParser,
  isProblem,
} from '../protocol/index.js';
import {
  EventDbxApiError,
  EventDbxClientError,
  EventDbxConnectionError,
  EventDbxResponseError,
} from './errors.js';
import { onAbort } from './abort.js';
import { type Transport, backoff, sleep } from './http.js';
import { delayOption, timeoutOption, whole } from './options.js';

export interface SubscribeOptions {
  /**
   * First position to deliver (inclusive); absent = events committed after the stream opens. A bad
   * one is an `EDBX_ERR_CLIENT_CONFIG` from the first `next()`.
   */
  readonly from?: number | undefined;
  /** Only events of this aggregate type. */
  readonly aggregate?: string | undefined;
  /** Abort to end the iteration (it then finishes without an error). */
  readonly signal?: AbortSignal | undefined;
  /**
   * Reconnect when nothing arrived for this long (default 45 s; the server beats every 15 s): a whole
   * number of ms up to 2^31−1, or 0 or `Infinity` to wait for ever (a silently dead connection is then
   * never noticed). Anything else is an `EDBX_ERR_CLIENT_CONFIG` from the first `next()`.
   */
  readonly idleTimeoutMs?: number | undefined;
  /** First reconnect delay (default 100 ms), doubling with jitter up to `maxDelayMs` (default 5 s). */
  readonly minDelayMs?: number | undefined;
  readonly maxDelayMs?: number | undefined;
  /** Give up after this many failed connection attempts in a row (default: never). */
  readonly maxAttempts?: number | undefined;
  /**
   * Called when the stream has caught up: every event up to `position`, the store's last position
   * when the call is made, has been yielded (and the loop body has run for it), or is not for this
   * subscription. `position` may be an entry that is never streamed (an audit log entry, another
   * aggregate type), so compare with it rather than with the last event's position, or with
   * `health().events`. Called once per connection: after the first catch-up, and again after each
   * reconnection. A projection rebuild stops there: `onCaughtUp: () => stop.abort()` ends the loop
   * (with `signal: stop.signal`), and `from: position + 1` follows on later. An error it throws
   * ends the iteration with that error.
   */
  readonly onCaughtUp?: ((position: number) => void | Promise<void>) | undefined;
}

class IdleTimeout extends EventDbxConnectionError {}

/** An error of the consumer's own callback: passed through, never a reason to reconnect. */
class Own {
  constructor(readonly error: unknown) {}
}

/** The position of a `caught-up` block (its id, which its data repeats), or undefined. */
function caughtUpAt(id: string | undefined): number | undefined {
  return id !== undefined && /^[0-9]+$/.test(id) ? Number(id) : undefined;
}

/**
 * Whether reconnecting can help: yes after network failures (including the body stream dying with a
 * TypeError from fetch) and 502/503/504; no after other answers (bad token, bad query, a server error).
 */
function retryable(e: unknown): boolean {
  if (e instanceof EventDbxApiError || e instanceof EventDbxResponseError)
    return e.status === 502 || e.status === 503 || e.status === 504;
  if (e instanceof EventDbxClientError) return e instanceof EventDbxConnectionError;
  return true;
}

export async function* subscribe(
  t: Transport,
  o: SubscribeOptions = {},
): AsyncGenerator<EventRecord, void, undefined> {
  if (o.from !== undefined) whole(o.from, 'from', 0);
  if (o.maxAttempts !== undefined) whole(o.maxAttempts, 'maxAttempts', 1);
  const idleMs = timeoutOption(o.idleTimeoutMs ?? 45_000, 'idleTimeoutMs'); // 0 = none
  const retry = {
    retries: 0,
    minDelayMs: delayOption(o.minDelayMs ?? 100, 'minDelayMs'),
    maxDelayMs: delayOption(o.maxDelayMs ?? 5_000, 'maxDelayMs'),
  };
  /** Next position wanted; undefined until the server said where the live tail starts. */
  let next = o.from === undefined ? undefined : Math.max(1, o.from);
  let delivered = next === undefined ? 0 : next - 1;
  let failures = 0;
  while (!o.signal?.aborted) {
    const ctl = new AbortController();
    const signal = o.signal;
    // One listener on the caller's signal however many calls and subscriptions share it (abort.ts).
    const unwatch = signal ? onAbort(signal, () => ctl.abort(signal.reason)) : () => {};
    let idle: NodeJS.Timeout | undefined;
    const alive = (): void => {
      clearTimeout(idle);
      if (idleMs > 0) idle = setTimeout(() => ctl.abort(new IdleTimeout(`no data for ${idleMs} ms`)), idleMs);
    };
    let error: unknown;
    try {
      alive();
      const res = await t.open(PATHS.stream, {
        query: { from: next, aggregate: o.aggregate },
        headers: {
          accept: SSE_CONTENT_TYPE,
          ...(next === undefined ? {} : { 'last-event-id': String(next - 1) }),
        },
        signal: ctl.signal,
      });
      if (!res.headers.get('content-type')?.startsWith(SSE_CONTENT_TYPE) || !res.body) {
        await res.body?.cancel().catch(() => {});
        throw new EventDbxResponseError(`the stream answered ${res.headers.get('content-type')}`, res.status);
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      try {
        for (;;) {
          // The idle timer runs only while waiting for the server, not while the consumer works.
          alive();
          const { value, done } = await reader.read();
          clearTimeout(idle);
          if (done) break;
          failures = 0;
          for (const m of parser.push(decoder.decode(value, { stream: true }))) {
            if (m.event === STREAM_ERROR) {
              const p: unknown = JSON.parse(m.data);
              throw isProblem(p)
                ? new EventDbxApiError(p)
                : new EventDbxResponseError(`stream error: ${m.data}`);
            }
            if (!m.hasData) {
              // An id-only block: where the stream stands (start, or filtered positions passed).
              const id = m.id !== undefined && /^[0-9]+$/.test(m.id) ? Number(m.id) : undefined;
              if (id !== undefined && (next === undefined || id + 1 > next)) next = id + 1;
              continue;
            }
            if (m.event === STREAM_CAUGHT_UP) {
              const head = caughtUpAt(m.id);
              if (head === undefined)
                throw new EventDbxResponseError(`the stream sent a caught-up block without a position`);
              if (next === undefined || head + 1 > next) next = head + 1;
              try {
                await o.onCaughtUp?.(head);
              } catch (e) {
                throw new Own(e);
              }
              // Stopped by the callback: nothing after the head it was told about.
              if (o.signal?.aborted) return;
              continue;
            }
            if (m.event !== STREAM_EVENT) continue;
            const record = JSON.parse(m.data) as EventRecord;
            const wrong = SHAPES.eventRecord.check(record);
            if (wrong !== undefined)
              throw new EventDbxResponseError(
                `the stream sent an event that is not an EventRecord: ${wrong}`,
              );
            if (record.position <= delivered) continue;
            delivered = record.position;
            next = record.position + 1;
            yield record;
          }
        }
        error = new EventDbxConnectionError('the server ended the stream');
      } finally {
        await reader.cancel().catch(() => {});
      }
    } catch (e) {
      if (e instanceof Own) throw e.error;
      if (o.signal?.aborted) return;
      if (e instanceof SyntaxError)
        throw new EventDbxResponseError('the stream sent an event that is not JSON', undefined, e);
      if (ctl.signal.reason instanceof IdleTimeout) error = ctl.signal.reason;
      else if (!retryable(e)) throw e;
      else error = e;
    } finally {
      clearTimeout(idle);
      unwatch();
      ctl.abort();
    }
    failures++;
    if (o.maxAttempts !== undefined && failures >= o.maxAttempts) {
      throw error instanceof EventDbxClientError
        ? error
        : new EventDbxConnectionError(`the stream failed ${failures} times in a row`, error);
    }
    try {
      await sleep(backoff(Math.min(failures - 1, 16), retry), o.signal);
    } catch {
      return;
    }
  }
}
