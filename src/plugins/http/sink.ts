/**
 * HTTP sink: POSTs each `EventRecord` as JSON with the configured headers and `Idempotency-Key: <event
 * id>`, one request at a time (so the receiver sees position order) over a kept-alive connection. A 2xx
 * answer is delivered. No answer (refused, reset, timed out, a name that does not resolve) or one that
 * says the receiver cannot take requests now (UNAVAILABLE) makes the destination unreachable: retried
 * until it is back, costing the event no attempt. Any other status fails the event: retried, then
 * dead-lettered. node:http rather than fetch: it costs several times less CPU per request, and this
 * runs in the server's process.
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

  #post(body: string, eventId: string): Promise<number> {
    const ms = this.delivery.timeout_ms;
    return new Promise((resolve, reject) => {
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
          res.on('error', reject);
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.resume(); // the answer's body is not used; reading it frees the connection
        },
      );
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'ETIMEDOUT' })),
      );
      req.on('error', reject);
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
