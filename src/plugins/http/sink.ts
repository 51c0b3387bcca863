/**
 * HTTP sink: POSTs each `EventRecord` as JSON with the configured headers and `Idempotency-Key: <event
 * id>`, one request at a time (so the receiver sees position order) over a kept-alive connection. A 2xx
 * answer is delivered. A request that never reached the receiver (refused, a name that does not resolve,
 * no connection within the timeout, TLS) or an answer that says the receiver cannot take requests now
 * (UNAVAILABLE) makes the destination unreachable: retried until it is back, costing the event no
 * attempt. A request the receiver took whole and then gave no answer to (it reset or closed the
 * connection, or did not answer within the timeout) counts against the event like any other status:
 * a receiver that fails on one event would otherwise hold every later one back forever. The one
 * exception is a kept-alive connection the receiver had closed as the request went out: that is
 * retried at once on a new connection. node:http rather than fetch: it costs several times less CPU
 * per request, and this runs in the server's process.
 */
import http from 'node:http';
import https from 'node:https';
import { maskUrl } from '../settings.js';
import {
  type DeliveryItem,
  type DeliveryOptions,
  type HttpSettings,
  type Sink,
  isNetworkError,
  itemFailure,
  reasonOf,
  unreachableFailure,
} from '../types.js';

/**
 * Too many requests, a gateway that cannot reach the receiver (bad gateway, gateway timeout), a
 * receiver out of service: answers about the receiver, not about the event. A 500 may be the event's
 * (a handler failing on it), so it counts.
 */
const UNAVAILABLE = new Set([429, 502, 503, 504]);

/** The receiver took the whole request, then closed the connection or did not answer in time. */
class NoAnswer extends Error {
  constructor(
    cause: unknown,
    /** Sent on a kept-alive connection (which the receiver may have closed just as it went out). */
    readonly reusedSocket: boolean,
  ) {
    super(
      (cause as { code?: string }).code === 'ETIMEDOUT'
        ? `the receiver took the request but sent ${reasonOf(cause)}`
        : `the receiver took the request and closed the connection without answering (${reasonOf(cause)})`,
    );
  }
}

export class HttpSink implements Sink {
  readonly needsState = false;
  /** Small batches: the cursor moves (and is saved) every few requests. */
  readonly batchSize = 10;
  readonly #url: URL;
  readonly #client: typeof http | typeof https;
  readonly #agent: http.Agent;

  constructor(
    private readonly settings: HttpSettings,
    private readonly delivery: DeliveryOptions,
  ) {
    this.#url = new URL(settings.endpoint);
    this.#client = this.#url.protocol === 'https:' ? https : http;
    this.#agent = new this.#client.Agent({ keepAlive: true, maxSockets: 1 });
  }

  /** POST `body`; on a kept-alive connection closed under the request, once more on a new one. */
  async #post(body: string, eventId: string): Promise<number> {
    try {
      return await this.#postOnce(body, eventId);
    } catch (e) {
      if (!(e instanceof NoAnswer) || !e.reusedSocket) throw e;
      return this.#postOnce(body, eventId);
    }
  }

  #postOnce(body: string, eventId: string): Promise<number> {
    const ms = this.delivery.timeout_ms;
    return new Promise((resolve, reject) => {
      // Whether the receiver took the request: a connection was made and the whole request written.
      let connected = false;
      let sent = false;
      let answered = false;
      const req = this.#client.request(
        this.#url,
        {
          method: 'POST',
          agent: this.#agent,
          timeout: ms,
          headers: {
            ...this.settings.headers,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'idempotency-key': eventId,
          },
        },
        (res) => {
          answered = true;
          res.on('error', reject);
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.resume(); // the answer's body is not used; reading it frees the connection
        },
      );
      req.on('socket', (socket) => {
        if (!socket.connecting) connected = true;
        else socket.once('connect', () => (connected = true));
      });
      req.on('finish', () => (sent = connected));
      req.on('timeout', () =>
        req.destroy(
          Object.assign(new Error(sent ? `no answer within ${ms} ms` : `no connection within ${ms} ms`), {
            code: 'ETIMEDOUT',
          }),
        ),
      );
      req.on('error', (e) => reject(sent && !answered ? new NoAnswer(e, req.reusedSocket) : e));
      req.end(body);
    });
  }

  async deliver(items: readonly DeliveryItem[]): Promise<void> {
    const where = `POST ${maskUrl(this.settings.endpoint)}`;
    for (let i = 0; i < items.length; i++) {
      const { record } = items[i]!;
      let status: number;
      try {
        status = await this.#post(JSON.stringify(record), record.metadata.event_id);
      } catch (e) {
        if (e instanceof NoAnswer) throw itemFailure('http', `${where}: ${e.message}`, i);
        // Anything else a request can throw (a header node:http refuses) is not about reaching it.
        const reason = `${where}: ${reasonOf(e)}`;
        throw isNetworkError(e) ? unreachableFailure('http', reason, i) : itemFailure('http', reason, i);
      }
      if (UNAVAILABLE.has(status)) throw unreachableFailure('http', `${where} answered ${status}`, i);
      if (status < 200 || status > 299) throw itemFailure('http', `${where} answered ${status}`, i);
    }
  }

  async close(): Promise<void> {
    this.#agent.destroy();
  }
}
