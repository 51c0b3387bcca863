/**
 * Prometheus metrics: HTTP requests and latencies, appends, fsync batches and their durations (from the
 * writer), whether the store takes writes, plugin delivery, the build, and Node's standard process
 * metrics under their standard names (`process_*`, `nodejs_*`) so stock dashboards and alerts match.
 */
import type { FastifyInstance, FastifyRequest, onResponseHookHandler } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { pluginStatus } from '../plugins/views.js';
import type { PluginStatus, PluginStatusList } from '../protocol/plugins.js';
import { type EventStore, STORAGE_LAYOUT } from '../store/index.js';
import { VERSION } from '../version.js';
import { UNMATCHED_ROUTE } from './problem.js';

export class Metrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'method' | 'route' | 'status'>;
  readonly #latency: Histogram<'method' | 'route'>;
  readonly #dropped: Counter;
  readonly #stopTiming: () => void;

  /** `version` is the one /health reports (default: this package's). */
  constructor(store: EventStore, version: string = VERSION) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'eventdbx_build_info',
      help: 'always 1; the version of the server and the storage layout of its data dir as labels',
      labelNames: ['version', 'layout'],
      registers: [this.registry],
    }).set({ version, layout: String(STORAGE_LAYOUT) }, 1);
    new Gauge({
      name: 'eventdbx_store_writable',
      help: '1 while the store takes writes, 0 once it refuses every write until a restart (see /health)',
      registers: [this.registry],
      collect() {
        this.set(store.writeFailure ? 0 : 1);
      },
    });
    new Gauge({
      name: 'eventdbx_acknowledged_head_ok',
      help: '1 while the acknowledged-head file keeps up with the store, 0 while it cannot be written (see /health)',
      registers: [this.registry],
      collect() {
        this.set(store.acknowledgedHeadFailure ? 0 : 1);
      },
    });
    new Gauge({
      name: 'eventdbx_store_damaged',
      help: '1 once a read met damaged files in the data dir (restore a backup; see /health), else 0',
      registers: [this.registry],
      collect() {
        this.set(store.engine.damage ? 1 : 0);
      },
    });
    new Gauge({
      name: 'eventdbx_clock_behind_seconds',
      help: 'how far the system clock is behind the newest time the store recorded (0 when it is not); while it is, recorded times are held at that time',
      registers: [this.registry],
      collect() {
        this.set(store.clock.behindMs() / 1000);
      },
    });
    // Observed once per durable batch (never per event): a batch's events share its one fsync.
    const fsync = new Histogram({
      name: 'eventdbx_fsync_duration_seconds',
      help: 'time to write and fsync one durable batch of appends',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    this.#stopTiming = store.onBatchWritten((seconds) => fsync.observe(seconds));
    this.#requests = new Counter({
      name: 'eventdbx_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.#latency = new Histogram({
      name: 'eventdbx_http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames: ['method', 'route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    this.#dropped = new Counter({
      name: 'eventdbx_http_connections_dropped_total',
      help: 'connections closed at once because max_connections were open',
      registers: [this.registry],
    });
    // Totals since start are counters (Prometheus `_total`); collect() copies the writer's figure.
    const total = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    total('eventdbx_appends_total', 'events appended since start', () => store.writerStats.events);
    total(
      'eventdbx_fsync_batches_total',
      'durable write batches (one fsync each) since start',
      () => store.writerStats.batches,
    );
    // Plugin health, read once per scrape for the three series (a scrape collects every metric at once).
    let scrape: Promise<PluginStatusList> | undefined;
    const plugins = () => {
      if (!scrape) {
        scrape = pluginStatus(store);
        setImmediate(() => (scrape = undefined));
      }
      return scrape;
    };
    // A plugin's series with no value (undefined) is left out of the scrape.
    const perPlugin = (
      name: string,
      help: string,
      value: (p: PluginStatus) => number | undefined,
      state = false,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: state ? ['plugin', 'kind', 'state'] : ['plugin', 'kind'],
        registers: [this.registry],
        async collect() {
          this.reset();
          for (const p of (await plugins()).plugins) {
            const v = value(p);
            if (v !== undefined)
              this.set({ plugin: p.name, kind: p.kind, ...(state ? { state: p.state } : {}) }, v);
          }
        },
      });
    new Counter({
      name: 'eventdbx_plugin_delivered_total',
      help: 'events each plugin delivered since its delivery started (server start or plugin change)',
      labelNames: ['plugin', 'kind'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const p of (await plugins()).plugins) this.inc({ plugin: p.name, kind: p.kind }, p.delivered);
      },
    });
    perPlugin(
      'eventdbx_plugin_last_delivery_timestamp_seconds',
      'when each plugin last delivered an event (Unix time); absent until its first delivery since start',
      (p) => (p.last_delivered_at ? Date.parse(p.last_delivered_at) / 1000 : undefined),
    );
    perPlugin(
      'eventdbx_plugin_lag',
      'positions committed but not yet delivered by each plugin (audit entries included)',
      (p) => p.lag,
    );
    perPlugin('eventdbx_plugin_dead_letters', 'events each plugin gave up on', (p) => p.dead_letters);
    perPlugin(
      'eventdbx_plugin_state',
      "each plugin's delivery state (1 for its current state)",
      () => 1,
      true,
    );
    new Gauge({
      name: 'eventdbx_events',
      help: 'events in the store (ledger size)',
      registers: [this.registry],
      collect() {
        this.set(store.size);
      },
    });
  }

  /** Stop timing the store's batches (the server closes). */
  close(): void {
    this.#stopTiming();
  }

  /**
   * Count a request without timing it: one whose reply its route took over (the event stream), when it
   * ends (how long a stream stayed open is no request latency, and would fill the histogram's last
   * bucket), or one whose client went away before the answer (499: no answer, no latency).
   */
  countUntimed(method: string, route: string, status: number): void {
    this.#requests.inc({ method, route, status: String(status) });
  }

  /**
   * Bytes of request bodies the server holds now (`read`), against `max_buffered_body_bytes`
   * (body-budget.ts): 0 when no body is on its way.
   */
  bodiesHeld(read: () => number): void {
    new Gauge({
      name: 'eventdbx_http_request_body_bytes',
      help: 'bytes of request bodies held now, being received or answered (max_buffered_body_bytes caps them)',
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** A connection over the cap was closed at once. */
  connectionDropped(): void {
    this.#dropped.inc();
  }

  /**
   * Count and time every request. Each route gets its own hook with its labels bound when it is added
   * (prom-client would otherwise hash the label set on every request); unmatched paths share one.
   * Requests whose reply their route took over (`takenOver`) are left to countUntimed.
   */
  instrument(app: FastifyInstance, takenOver: (req: FastifyRequest) => boolean): void {
    const server = app.server;
    new Gauge({
      name: 'eventdbx_http_connections_open',
      help: 'HTTP connections open now (max_connections caps them)',
      registers: [this.registry],
      async collect() {
        this.set(await new Promise<number>((r) => server.getConnections((e, n) => r(e ? 0 : n))));
      },
    });
    new Gauge({
      name: 'eventdbx_http_connections_max',
      help: 'HTTP connections kept open at most: max_connections, or fewer when the open-files limit leaves fewer (the log says why)',
      registers: [this.registry],
      collect() {
        this.reset();
        const max = server.maxConnections;
        if (Number.isFinite(max) && max > 0) this.set(max);
      },
    });
    const hook = (method: string, route: string): onResponseHookHandler => {
      const latency = this.#latency.labels({ method, route });
      const counted = new Map<number, Counter.Internal>();
      return (req, reply, done) => {
        if (takenOver(req)) return done();
        let requests = counted.get(reply.statusCode);
        if (requests === undefined) {
          requests = this.#requests.labels({ method, route, status: String(reply.statusCode) });
          counted.set(reply.statusCode, requests);
        }
        requests.inc();
        latency.observe(reply.elapsedTime / 1000);
        done();
      };
    };
    app.addHook('onRoute', (route) => {
      const methods = [route.method].flat();
      // A route for several methods: each request finds its method's hook.
      const hooks = new Map(methods.map((m) => [m, hook(m, route.url)]));
      const one = hooks.size === 1 ? hooks.values().next().value! : undefined;
      const onResponse: onResponseHookHandler =
        one ?? ((req, reply, done) => hooks.get(req.method)!.call(app, req, reply, done));
      route.onResponse = [...[route.onResponse ?? []].flat(), onResponse];
    });
    const unmatched = new Map<string, onResponseHookHandler>();
    app.addHook('onResponse', function (req, reply, done) {
      if (!req.is404) return done();
      let h = unmatched.get(req.method);
      if (h === undefined) unmatched.set(req.method, (h = hook(req.method, UNMATCHED_ROUTE)));
      h.call(this, req, reply, done);
    });
  }
}
