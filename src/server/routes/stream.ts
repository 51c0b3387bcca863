/**
 * The event stream: `GET /v1/events/stream?from=<position>[&aggregate=<type>]` as Server-Sent Events.
 *
 * Each connection catches up from the store-wide log (`scanLog`, in pages), then follows commits
 * (`onCommit`). One cursor, `next` (the next position to examine), decides what is sent: live records
 * are used only when they start exactly at `next`, and anything else is read from the log, so the
 * catch-up/live boundary can neither skip nor repeat a position. The live buffer is bounded; a slow
 * reader loses only the buffer and catches up from the log again.
 *
 * A catch-up costs what the stream may send: each page is filtered on its ledger entries (which name
 * the aggregate in clear) by the token's scopes and the `aggregate` filter, and only the events left
 * are read and decrypted. Between pages it lets the event loop serve other requests, and checks the
 * token again. One token has at most `maxStreamsPerToken` streams open (429 EDBX_ERR_TOO_MANY_STREAMS).
 *
 * Event ids are positions, so `Last-Event-ID` resumes. The token's read scopes apply per event;
 * system aggregates ('$…') are never streamed. The token is re-checked before every write, before
 * every page of a catch-up and at every heartbeat (a revoked or expired token ends the stream before
 * anything more is sent or read). Heartbeats are comment lines; they carry the resume point past
 * filtered events. The first time a connection has sent everything up to the store's head, it says so
 * (`event: caught-up`): what a projection rebuild waits for, since the head may be a position it
 * never receives (an audit entry, a filtered one).
 */
import type { ServerResponse } from 'node:http';
import { setImmediate as turn } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge } from 'prom-client';
import { DEFAULT_MAX_STREAMS_PER_TOKEN, DEFAULT_STREAM_HEARTBEAT_MS } from '../../config/config.js';
import { type EventDbxError, err, toEventDbxError } from '../../core/errors.js';
import type { EventRecord } from '../../core/event.js';
import { aggregateType, wholeNumber } from '../../core/names.js';
import { type TokenRecord, authorize, scopeCovers, scopesReachType } from '../../core/tokens.js';
import {
  PATHS,
  SSE_CONTENT_TYPE,
  STREAM_CAUGHT_UP,
  STREAM_ERROR,
  STREAM_EVENT,
  formatComment,
  formatSse,
} from '../../protocol/index.js';
import type { EventStore } from '../../store/index.js';
import type { RouteContext } from '../app.js';
import type { Feature, FeatureLogger } from '../features.js';
import { toProblem } from '../problem.js';
import { MAX_WHOLE, errors, problemResponse, uint } from '../schemas.js';

/** Log positions examined per catch-up step (only those the stream may send are read). */
const PAGE = 512;
/** Live records buffered per connection before it falls back to reading the log. */
const MAX_PENDING = 8192;
/** Client reconnect delay advertised with `retry:`. */
const RETRY_MS = 1000;

/** SSE blocks of live records, shared by every connection that sends them (records are shared too). */
const blocks = new WeakMap<EventRecord, string>();
const blockOf = (r: EventRecord): string => {
  let b = blocks.get(r);
  if (b === undefined) {
    b = formatSse({ id: r.position, event: STREAM_EVENT, data: JSON.stringify(r) });
    blocks.set(r, b);
  }
  return b;
};

interface Filter {
  readonly aggregate: string | undefined;
}

class StreamConnection {
  #next: number;
  /** The last position the client was told about (event or id-only block). */
  #told: number;
  #pending: EventRecord[] = [];
  #head = 0;
  #pumping = false;
  #scheduled = false;
  #closed = false;
  #caughtUp = false;
  #token: TokenRecord;
  #unsubscribe: () => void = () => {};
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly res: ServerResponse,
    token: TokenRecord,
    private readonly filter: Filter,
    from: number,
    private readonly log: FeatureLogger,
    private readonly onClose: (c: StreamConnection) => void,
    private readonly onOverflow: () => void,
  ) {
    this.#token = token;
    this.#next = from;
    this.#told = from - 1;
  }

  /** Start sending, with a comment heartbeat every `heartbeatMs`. */
  start(heartbeatMs: number): void {
    // Listening first, in the same tick as `from` was computed: no commit can fall in between.
    this.#unsubscribe = this.store.onCommit(this.#onCommit);
    this.res.on('close', () => this.close());
    this.res.on('error', () => this.close());
    this.res.writeHead(200, {
      'content-type': `${SSE_CONTENT_TYPE}; charset=utf-8`,
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    this.res.write(formatSse({ retry: RETRY_MS, id: this.#told }));
    this.#timer = setInterval(() => this.#beat(), heartbeatMs);
    this.#timer.unref();
    void this.#pump();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    clearInterval(this.#timer);
    this.#pending = [];
    this.#head = 0;
    if (!this.res.writableEnded) this.res.end();
    this.onClose(this);
  }

  #onCommit = (records: readonly EventRecord[]): void => {
    if (this.#closed) return;
    if (this.#pending.length - this.#head + records.length > MAX_PENDING) {
      // Too far behind: drop the buffer, the log has it all.
      this.#pending = [];
      this.#head = 0;
      this.onOverflow();
    } else {
      for (const r of records) this.#pending.push(r);
    }
    // Not inside the writer's commit hook: let the appends it resolves go first.
    if (!this.#pumping && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        void this.#pump();
      });
    }
  };

  /** Whether this stream sends the events of an aggregate (by the token's current scopes). */
  #covers(type: string, id: string): boolean {
    if (type.startsWith('$')) return false;
    if (this.filter.aggregate !== undefined && type !== this.filter.aggregate) return false;
    const scopes = this.#token.scopes;
    return scopes.length === 0 || scopes.some((s) => scopeCovers(s, type, id));
  }

  #visible(r: EventRecord): boolean {
    return this.#covers(r.aggregate_type, r.aggregate_id);
  }

  /** The catch-up's filter on ledger entries: events it rejects are never read or decrypted. */
  #keep = (ref: { readonly type: string; readonly id: string }): boolean => this.#covers(ref.type, ref.id);

  /** Format the record at `next` (sent only if visible) and advance. */
  #take(r: EventRecord): string {
    if (r.position !== this.#next) {
      throw err('EDBX_ERR_INTEGRITY', {
        where: 'ledger',
        reason: `position ${this.#next} is missing from the log (found ${r.position})`,
      });
    }
    this.#next++;
    if (!this.#visible(r)) return '';
    this.#told = r.position;
    return blockOf(r);
  }

  async #pump(): Promise<void> {
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    try {
      while (!this.#closed) {
        let out = '';
        let paged = false;
        const p = this.#pending;
        while (this.#head < p.length && p[this.#head]!.position < this.#next) this.#head++;
        if (this.#head < p.length && p[this.#head]!.position === this.#next) {
          while (this.#head < p.length && p[this.#head]!.position === this.#next)
            out += this.#take(p[this.#head++]!);
        } else if (this.#next <= this.store.size) {
          // Checked on every page, whether or not it sends anything: a revoke, an expiry or narrower
          // scopes end (or narrow) a long catch-up within a page.
          if (!this.#stillAuthorized()) return;
          const page = await this.store.scanLog(this.#next, PAGE, this.#keep);
          if (this.#closed) return;
          if (page.next <= this.#next) {
            throw err('EDBX_ERR_INTEGRITY', {
              where: 'ledger',
              reason: `position ${this.#next} is missing from the log`,
            });
          }
          for (const r of page.records) {
            // A heartbeat may have re-read the token while the page was read: its scopes now.
            if (!this.#visible(r)) continue;
            this.#told = r.position;
            out += blockOf(r);
          }
          this.#next = page.next;
          paged = true;
        } else if (!this.#caughtUp) {
          // Every position up to the head has been sent or passed: say so once, with the head as
          // the resume point (it also moves the client past filtered positions at the end).
          this.#caughtUp = true;
          this.#told = this.#next - 1;
          out = formatSse({
            id: this.#told,
            event: STREAM_CAUGHT_UP,
            data: JSON.stringify({ position: this.#told }),
          });
        } else {
          break;
        }
        if (this.#head === this.#pending.length) {
          this.#pending = [];
          this.#head = 0;
        }
        // The token is checked again before anything is sent: a revoke or an expiry ends the stream
        // before the next event, not at the next heartbeat.
        if (out && !this.#stillAuthorized()) return;
        if (out && !this.res.write(out)) await this.#drained();
        // A page at a time, then the event loop: appends and other requests go on during a long catch-up.
        if (paged) await turn();
      }
    } catch (e) {
      this.#fail(toEventDbxError(e));
    } finally {
      this.#pumping = false;
    }
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  /** Re-checks the token (revoked, expired, removed); on failure ends the stream and returns false. */
  #stillAuthorized(): boolean {
    try {
      const current = this.store.tokens.get(this.#token.hash);
      if (!current) throw err('EDBX_ERR_TOKEN_UNKNOWN');
      authorize(current, this.store.env.now(), { write: false });
      this.#token = current;
      return true;
    } catch (e) {
      this.#fail(toEventDbxError(e));
      return false;
    }
  }

  #beat(): void {
    if (this.#closed || !this.#stillAuthorized()) return;
    // Filtered-out positions went by: move the client's resume point past them. (Between awaits of
    // the pump, every position below `next` has been written.)
    const passed = this.#next - 1;
    let out = formatComment('heartbeat');
    if (passed > this.#told) {
      this.#told = passed;
      out += formatSse({ id: passed });
    }
    this.res.write(out);
  }

  #fail(e: EventDbxError): void {
    if (this.#closed) return;
    if (e.code === 'EDBX_ERR_INTERNAL' || e.code === 'EDBX_ERR_INTEGRITY')
      this.log.error({ err: e }, 'event stream failed');
    this.res.write(formatSse({ event: STREAM_ERROR, data: JSON.stringify(toProblem(e, PATHS.stream)) }));
    this.close();
  }
}

/** The open streams of one server, and how many each token has (by token hash). */
class StreamHub {
  readonly connections = new Set<StreamConnection>();
  readonly #perToken = new Map<string, number>();

  openFor(tokenHash: string): number {
    return this.#perToken.get(tokenHash) ?? 0;
  }

  add(c: StreamConnection, tokenHash: string): void {
    this.connections.add(c);
    this.#perToken.set(tokenHash, this.openFor(tokenHash) + 1);
  }

  delete(c: StreamConnection, tokenHash: string): void {
    if (!this.connections.delete(c)) return;
    const left = this.openFor(tokenHash) - 1;
    if (left > 0) this.#perToken.set(tokenHash, left);
    else this.#perToken.delete(tokenHash);
  }

  closeAll(): void {
    for (const c of [...this.connections]) c.close();
  }
}

const hubs = new Set<StreamHub>();

/**
 * Where the stream starts. A start past the next position the store will write is refused
 * (EDBX_ERR_POSITION_BEYOND_HEAD) rather than followed: it was saved from history this store does not
 * have (restored from a backup since, or another store), and the stream would send nothing until
 * the store grew past it, then events the saver never saw under positions it thinks it has.
 */
function firstPosition(store: EventStore, query: { from?: string }, lastEventId: unknown): number {
  const n = givenPosition(store, query, lastEventId);
  if (n.position > store.size + 1)
    throw err('EDBX_ERR_POSITION_BEYOND_HEAD', { name: n.name, value: n.value, size: store.size });
  return n.position;
}

function givenPosition(
  store: EventStore,
  query: { from?: string },
  lastEventId: unknown,
): { position: number; name: string; value: unknown } {
  if (lastEventId !== undefined) {
    const raw = Array.isArray(lastEventId) ? lastEventId[0] : lastEventId;
    const n = wholeNumber(raw);
    if (n === undefined)
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: 'Last-Event-ID',
        value: raw,
        reason: 'use the id of the last event received (a position)',
      });
    return { position: n + 1, name: 'Last-Event-ID', value: n };
  }
  if (query.from === undefined) return { position: store.size + 1, name: 'from', value: undefined };
  const n = wholeNumber(query.from);
  if (n === undefined)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'from',
      value: query.from,
      reason: `use a position, a whole number from 0 to ${MAX_WHOLE} (1 = from the first event)`,
    });
  return { position: Math.max(1, n), name: 'from', value: n };
}

async function streamRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const hub = new StreamHub();
  hubs.add(hub);
  const maxPerToken = ctx.options.maxStreamsPerToken ?? DEFAULT_MAX_STREAMS_PER_TOKEN;
  const heartbeatMs = ctx.options.streamHeartbeatMs ?? DEFAULT_STREAM_HEARTBEAT_MS;
  const refused = new Counter({
    name: 'eventdbx_stream_refused_total',
    help: 'event streams refused because their token had max_streams_per_token open (429)',
    registers: [ctx.metrics.registry],
  });
  const overflows = new Counter({
    name: 'eventdbx_stream_overflows_total',
    help: 'live buffers dropped because a subscriber fell behind (it then catches up from the log)',
    registers: [ctx.metrics.registry],
  });
  new Gauge({
    name: 'eventdbx_stream_subscribers',
    help: 'open event stream connections',
    registers: [ctx.metrics.registry],
    collect() {
      this.set(hub.connections.size);
    },
  });
  // Streams never finish on their own: end them before the server waits for in-flight requests.
  app.addHook('preClose', async () => hub.closeAll());
  app.addHook('onClose', async () => {
    hub.closeAll();
    hubs.delete(hub);
  });

  app.get<{ Querystring: { from?: string; aggregate?: string } }>(
    PATHS.stream,
    {
      // A stream has no end, so a HEAD of it (headers only) would never be answered: GET only.
      exposeHeadRoute: false,
      schema: {
        summary: 'Live events as Server-Sent Events: catch up from a position, then follow commits',
        description:
          'text/event-stream. Each event: `id: <position>`, `event: event`, `data: <EventRecord JSON>`. ' +
          'Resume with `Last-Event-ID` (or `from` = last id + 1). Comment heartbeats; an `id:`-only block ' +
          'moves the resume point. Once everything up to the head has been sent, `event: caught-up` with ' +
          '`id: <head>` and `data: {"position":<head>}` (once per connection). ' +
          'A fatal error is `event: error` with a problem document, then the end.',
        querystring: {
          type: 'object',
          properties: {
            from: uint(
              'first position to deliver, 0 or 1 = the first event (default: only new events); past the store size + 1 it is refused (416)',
              {
                minimum: 0,
                maximum: MAX_WHOLE,
              },
            ),
            aggregate: { type: 'string', description: 'only events of this aggregate type' },
          },
          additionalProperties: false,
        },
        headers: {
          type: 'object',
          properties: { 'last-event-id': { type: 'string', description: 'resume after this position' } },
        },
        produces: [SSE_CONTENT_TYPE],
        response: {
          200: { description: 'An endless text/event-stream (see above)', type: 'string' },
          400: errors[400],
          401: errors[401],
          403: errors[403],
          416: problemResponse(
            'EDBX_ERR_POSITION_BEYOND_HEAD: `from` (or `Last-Event-ID` + 1) is past the next position the store will write (a position saved before a restore from a backup)',
          ),
          429: problemResponse(
            'EDBX_ERR_TOO_MANY_STREAMS: the token already has max_streams_per_token event streams open (default 16)',
          ),
        },
      },
    },
    async (req, reply) => {
      const token = ctx.auth(req.headers.authorization, { write: false });
      const aggregate = req.query.aggregate === undefined ? undefined : aggregateType(req.query.aggregate);
      if (aggregate !== undefined && !scopesReachType(token.scopes, aggregate)) {
        throw err('EDBX_ERR_TOKEN_OUT_OF_SCOPE', { id: token.id, aggregate });
      }
      const from = firstPosition(ctx.store, req.query, req.headers['last-event-id']);
      const open = hub.openFor(token.hash);
      if (open >= maxPerToken) {
        refused.inc();
        throw err('EDBX_ERR_TOO_MANY_STREAMS', { id: token.id, open, max: maxPerToken });
      }
      // Logged and counted when it ends (the client goes, the token is revoked, the server stops).
      const ended = ctx.takeOver(req, reply);
      req.raw.socket.setTimeout(0);
      const conn = new StreamConnection(
        ctx.store,
        reply.raw,
        token,
        { aggregate },
        from,
        req.log,
        (c) => {
          hub.delete(c, token.hash);
          ended();
        },
        () => overflows.inc(),
      );
      hub.add(conn, token.hash);
      conn.start(heartbeatMs);
    },
  );
}

export const streamFeature: Feature = {
  name: 'stream',
  routes: (app, ctx) => streamRoutes(app, ctx),
  async stop() {
    for (const h of hubs) h.closeAll();
  },
};
