/**
 * The HTTP server: fastify with JSON-schema validation (no coercion, no silent stripping: unknown fields
 * are refused), bearer-token auth on every route but /health, problem+json errors, Prometheus metrics,
 * and an OpenAPI document generated from the route schemas at /openapi.json.
 */
import swagger from '@fastify/swagger';
import Router, { type HTTPMethod } from 'find-my-way';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
  type onRequestHookHandler,
} from 'fastify';
import { WRITES_REFUSED, err } from '../core/errors.js';
import { RepeatLog } from '../core/repeat-log.js';
import { type Access, type TokenRecord, redactTokens } from '../core/tokens.js';
import { type EventStore, clockLagMessage } from '../store/index.js';
import { authenticate } from '../store/tokens.js';
import { DEFAULT_MAX_BUFFERED_BODY_BYTES } from '../config/config.js';
import { BodyBudget } from './body-budget.js';
import { Metrics } from './metrics.js';
import { parseJsonBody } from './json-body.js';
import { preconditionRefusal } from './preconditions.js';
import { errorHandler, headerTokenId, notFoundHandler, routeOf } from './problem.js';
import { type Timeouts, clientErrorHandler, httpTimeouts, isBodyMethod } from './protocol.js';
import { trackInFlight } from './in-flight.js';
import { logAcceptErrors } from './accept-errors.js';
import { aggregateRoutes } from './routes/aggregates.js';
import { declaredResponses, documented, problem } from './schemas.js';
import { systemRoutes } from './routes/system.js';

export interface ServerOptions {
  readonly store: EventStore;
  readonly version: string;
  readonly restrict: string;
  /** pino logger options, or false to disable logging. */
  readonly logger?: boolean | Record<string, unknown>;
  readonly bodyLimit?: number;
  /**
   * Bytes of request bodies held at once, all connections together (body-budget.ts); a body that would
   * pass it is refused with 503. Default: 64 MiB, or the body limit when that is more.
   */
  readonly maxBufferedBodyBytes?: number;
  /**
   * Open connections at most (Node's `server.maxConnections`): one over it is closed at once, before
   * a byte is read, and counted and logged. Default: no cap (`start` passes the configured one).
   */
  readonly maxConnections?: number;
  /** Event streams one token may have open at once (default DEFAULT_MAX_STREAMS_PER_TOKEN). */
  readonly maxStreamsPerToken?: number;
  /** Comment heartbeats on an event stream, in ms (default DEFAULT_STREAM_HEARTBEAT_MS). */
  readonly streamHeartbeatMs?: number;
  /** Request, headers and keep-alive timeouts (tests make them short). */
  readonly timeouts?: Timeouts;
  /**
   * Aborted by a stopping server once it stops waiting for the requests in flight: their long reads
   * end with its reason (EDBX_ERR_SHUTTING_DOWN).
   */
  readonly stopSignal?: AbortSignal;
  /** How long identical error lines are collapsed into one (default a minute; tests make it short). */
  readonly repeatIntervalMs?: number;
  /** Extra route plugins (schemas, checkpoint, streams) registered by later layers. */
  readonly extraRoutes?: ReadonlyArray<(app: FastifyInstance, ctx: RouteContext) => Promise<void> | void>;
}

/**
 * The access a route's requests need, from what arrives before the body (the path's parameters): a
 * value, or what the parameters make it.
 */
export type RouteAccess = Access | ((params: never) => Access);

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * What a route with a body (POST, PUT, PATCH, DELETE) needs of its token. Checked before the body
     * is read, so a token that cannot make the write (read-only, out of scope, not an admin) is refused
     * without the server receiving its body, and by the route again (`ctx.authorized`) once it has it:
     * the token may have been revoked meanwhile. Every such route but a public one declares it.
     */
    readonly access?: RouteAccess;
  }
}

const accessOf = (access: RouteAccess, params: unknown): Access =>
  typeof access === 'function' ? (access as (p: unknown) => Access)(params) : access;

export interface RouteContext {
  readonly store: EventStore;
  readonly metrics: Metrics;
  readonly options: ServerOptions;
  /** Authenticate the request's bearer token for an access; throws a coded 401/403 error. */
  auth(header: string | undefined, access: Access): TokenRecord;
  /** The token of a request, authenticated for the access its route declares (`config.access`). */
  authorized(req: FastifyRequest): TokenRecord;
  /** True while the server drains for shutdown: new writes are refused with 503. */
  readonly draining: () => boolean;
  /**
   * Take the reply over (`reply.hijack()`: the event stream) and return what to call when it ends,
   * however it ends: that call (the first; later ones do nothing) writes the request's access log line
   * (its status, how long it lasted) and counts it in /metrics. fastify's onResponse hooks cannot:
   * they run when the server ends such a reply, but not when its client goes away.
   */
  takeOver(req: FastifyRequest, reply: FastifyReply): () => void;
}

/**
 * The logger options with every line's tokens shown as their ids (`redactTokens`), whatever logged
 * it (an error's message quoting a value, a plugin's line): pino's last hook before the line is written.
 */
function redactingLogger(logger: boolean | Record<string, unknown>): boolean | Record<string, unknown> {
  if (logger === false) return false;
  const o = logger === true ? {} : logger;
  return { ...o, hooks: { ...(o.hooks as object | undefined), streamWrite: redactTokens } };
}

/**
 * Node closes a connection over the cap as soon as it is accepted (its 'drop' event); each is counted,
 * and logged at warn level (collapsed: a flood is a line a minute with the number left out). The cap
 * is `server.maxConnections`, which a server short of descriptors lowers while it runs (descriptors.ts).
 */
function capConnections(app: FastifyInstance, max: number, metrics: Metrics, lines: RepeatLog): void {
  app.server.maxConnections = max;
  app.server.on('drop', (peer?: { remoteAddress?: string }) => {
    metrics.connectionDropped();
    lines.note('max-connections', {
      level: 'warn',
      fields: {
        max_connections: app.server.maxConnections,
        ...(peer?.remoteAddress ? { ip: peer.remoteAddress } : {}),
      },
      msg: 'connection closed at once: the server has max_connections open (EVENTDBX_MAX_CONNECTIONS)',
    });
  });
}

type AccessLine = (req: FastifyRequest, status: number, ms: number, ip?: string) => void;

/**
 * The status logged and counted for a request whose client closed its connection before the answer
 * (nginx's "client closed request"): never sent, since no one is there to read it.
 */
const CLIENT_GONE = 499;

/**
 * The access log, at debug level (`EVENTDBX_LOG_LEVEL=debug`): one line per answered request with its
 * method, route (the pattern, not the path: ids stay out; `unmatched` for unknown paths), status,
 * duration, client address and the token's id (never the token, never a payload value). Not
 * collapsed: each request is a line. Requests whose reply their route took over (`takenOver`) are
 * left to the route (see RouteContext.takeOver), which gets the line to write: none at other levels.
 */
function accessLog(
  app: FastifyInstance,
  takenOver: (req: FastifyRequest) => boolean,
): AccessLine | undefined {
  // Decided once (the level is fixed at start): at other levels no request pays for it.
  if (app.log.level !== 'debug' && app.log.level !== 'trace') return undefined;
  const line: AccessLine = (req, status, ms, ip = req.ip) => {
    const tokenId = headerTokenId(req.headers.authorization);
    req.log.debug(
      {
        method: req.method,
        route: routeOf(req),
        status,
        duration_ms: Math.round(ms * 10) / 10,
        ip,
        ...(tokenId ? { token_id: tokenId } : {}),
      },
      'request',
    );
  };
  app.addHook('onResponse', (req, reply, done) => {
    if (!takenOver(req)) line(req, reply.statusCode, reply.elapsedTime);
    done();
  });
  return line;
}

export async function buildServer(
  options: ServerOptions,
): Promise<{ app: FastifyInstance; ctx: RouteContext; drain: () => void }> {
  const timeouts = httpTimeouts(options.timeouts);
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  let closing = false;
  let log: FastifyBaseLogger | undefined;
  const app = Fastify({
    logger: redactingLogger(options.logger ?? false),
    bodyLimit,
    ...timeouts,
    // Timed-out, oversized and malformed requests that never reach a route get problem+json too.
    clientErrorHandler: clientErrorHandler(timeouts, () => log!),
    // Requests that arrive while closing get problem+json from the onRequest hook below.
    return503OnClosing: false,
    // Aggregate ids may be 128 characters, each up to 4 UTF-8 bytes percent-encoded (12 characters).
    routerOptions: { maxParamLength: 2048 },
    // Router errors (bad percent-encoding, over-long parameters) get problem+json like every other error.
    frameworkErrors: (e, req, reply) => onError(e, req, reply),
    ajv: {
      customOptions: {
        removeAdditional: false,
        coerceTypes: false,
        useDefaults: true,
        allErrors: false,
        allowUnionTypes: true,
        // Each error carries the value that failed, so the problem can show what was sent.
        verbose: true,
      },
    },
    // fastify's request lines are off (they show the URL, ids and all): accessLog writes ours at debug.
    logController: new LogController({ disableRequestLogging: true }),
  });
  log = app.log;
  // Repeated error lines are collapsed; the counts left out are logged by a timer, or when it closes.
  const lines = new RepeatLog(app.log, options.repeatIntervalMs);
  const onError = errorHandler(() => closing, lines);
  app.addHook('onClose', (_app, done) => {
    lines.close();
    done();
  });
  options.store.onWriteFailure((e) => app.log.error({ code: e.code }, `${WRITES_REFUSED}: ${e.message}`));
  // A wall clock behind the newest recorded time: times are held (store/clock.ts); said once an episode.
  const stopClockLog = options.store.clock.onLag((lag) => {
    if (lag) app.log.warn({ clock_behind_ms: lag.behind_ms, held_at: lag.held_at }, clockLagMessage(lag));
    else app.log.info(clockLagMessage(undefined));
  });
  // The clock is read every second: a step back is said at once, not at the next write, and times
  // and token expiry are held at the newest time this server has seen, not only the newest recorded.
  const clockTick = setInterval(() => options.store.clock.now(), 1000).unref();
  app.addHook('onClose', (_app, done) => {
    clearInterval(clockTick);
    stopClockLog();
    done();
  });
  // What the server serves through but an operator must act on: logged once when it starts (and when
  // the acknowledged-head file is written again); /health says it meanwhile.
  options.store.engine.onDamage((e) => app.log.error({ code: e.code }, e.message));
  options.store.onAcknowledgedHeadChange((failure) => {
    if (failure) app.log.error({ code: failure.code }, failure.message);
    else
      app.log.info(
        { code: 'EDBX_ERR_ACKNOWLEDGED_HEAD' },
        'the acknowledged-head file is written again: it covers every acknowledged event once more',
      );
  });
  let draining = false;
  const metrics = new Metrics(options.store, options.version);
  app.addHook('onClose', (_app, done) => {
    metrics.close();
    done();
  });
  // Requests whose reply their route took over: logged and counted by the route when they end.
  const takenOver = new WeakSet<FastifyRequest>();
  const isTakenOver = (req: FastifyRequest) => takenOver.has(req);
  metrics.instrument(app, isTakenOver);
  const accessLine = accessLog(app, isTakenOver);
  const ctx: RouteContext = {
    store: options.store,
    metrics,
    options,
    auth: (header, access) => authenticate(options.store, header, access),
    authorized(req) {
      const access = req.routeOptions.config.access;
      if (access === undefined)
        throw err('EDBX_ERR_INTERNAL', { reason: `route ${routeOf(req)} declares no access` });
      return authenticate(options.store, req.headers.authorization, accessOf(access, req.params));
    },
    draining: () => draining,
    takeOver(req, reply) {
      reply.hijack();
      takenOver.add(req);
      // Read now: once the client has gone, its socket no longer says where it was.
      const ip = req.ip;
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        // The status its route wrote (a stream's 200), and how long the reply lasted until now.
        const status = reply.raw.statusCode;
        metrics.countUntimed(req.method, routeOf(req), status);
        accessLine?.(req, status, reply.elapsedTime, ip);
      };
    },
  };
  // JSON only: without this, fastify would accept text/plain bodies and fail them as 400 later.
  app.removeContentTypeParser('text/plain');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    try {
      done(null, parseJsonBody(req, body as Buffer));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.setErrorHandler(onError);
  // Every route's method and path, to tell a wrong method (405 with Allow) from a wrong path (404).
  const known = Router({ maxParamLength: 2048 });
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (!known.hasRoute(method as HTTPMethod, route.url))
        known.on(method as HTTPMethod, route.url, () => {});
    }
  });
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
  const notFound = notFoundHandler((path) => methods.filter((m) => known.find(m, path) !== null));
  app.setNotFoundHandler(notFound);
  if (options.maxConnections !== undefined) capConnections(app, options.maxConnections, metrics, lines);
  // Once listening (an error while it starts to listen is listen's own to report).
  app.server.once('listening', () => logAcceptErrors(app.server, lines, 'http'));
  trackInFlight(app, timeouts.connectionTimeout, options.stopSignal ?? new AbortController().signal);
  // Authenticate before the body is read and validated: an unauthenticated request gets 401, never a
  // 400 that reveals the API's shape. Routes check their precise access (write, scope, admin) again.
  // Closing: in-flight requests finish, new ones are refused with 503 (writes already are while draining).
  app.addHook('preClose', async () => {
    closing = draining = true;
  });
  app.addHook('onRequest', (req, reply, done) => {
    // A client that goes away before its answer (a timeout, a reset) gets no 'finish', so no
    // onResponse hook runs for it: counted and logged here, as 499, when its connection closes.
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished || isTakenOver(req)) return;
      metrics.countUntimed(req.method, routeOf(req), CLIENT_GONE);
      accessLine?.(req, CLIENT_GONE, reply.elapsedTime);
    });
    if (closing) return done(err('EDBX_ERR_SHUTTING_DOWN'));
    // An unknown path is answered before its body is read (fastify would read it for the 404 handler),
    // so no client, with or without a token, makes the server hold a body that no route takes.
    if (req.is404) return notFound(req, reply);
    done();
  });
  // Decided per route when it is added (a route whose schema says `security: []` is public; unmatched
  // paths get 404 without a token), so no request pays for looking its route's options up. A route
  // with a body is checked for the access it declares (`config.access`: write, scope, admin), so a
  // token that cannot make the write is refused before the body is read, as one that is not valid is.
  const authenticateFirst: onRequestHookHandler = (req, _reply, done) => {
    ctx.auth(req.headers.authorization, { write: false });
    done();
  };
  const authenticateFor =
    (access: RouteAccess): onRequestHookHandler =>
    (req, _reply, done) => {
      ctx.auth(req.headers.authorization, accessOf(access, req.params));
      done();
    };
  app.addHook('onRoute', (route) => {
    const security = (route.schema as { security?: unknown[] } | undefined)?.security;
    if (Array.isArray(security) && security.length === 0) return;
    const access = route.config?.access;
    if (access === undefined && [route.method].flat().some(isBodyMethod))
      throw new Error(`${String(route.method)} ${route.url} takes a body but declares no config.access`);
    const first = access === undefined ? authenticateFirst : authenticateFor(access);
    route.onRequest = [first, ...[route.onRequest ?? []].flat()];
  });
  // After the token: the bodies of the requests it lets through are counted before they are buffered
  // (never below the body limit, or a body the server takes would be refused whenever it came).
  const budget = new BodyBudget(
    Math.max(options.maxBufferedBodyBytes ?? DEFAULT_MAX_BUFFERED_BODY_BYTES, bodyLimit),
  );
  metrics.bodiesHeld(() => budget.held);
  app.addHook('onRoute', (route) => {
    const hook = budget.hookFor(route, bodyLimit);
    if (hook) route.preParsing = [hook, ...[route.preParsing ?? []].flat()];
  });
  // After the token: a write sent with a precondition it does not take is refused, never done unguarded.
  app.addHook('onRoute', (route) => {
    const refusal = preconditionRefusal(route);
    if (refusal) route.onRequest = [...[route.onRequest ?? []].flat(), refusal];
  });
  // What every route can answer by its method (408, 414, 431, 503; 413 and 415 with a body): declared once.
  app.addHook('onRoute', (route) => {
    const schema = route.schema as { response?: Record<string, unknown> } | undefined;
    if (schema) schema.response = declaredResponses(route.method, schema.response);
  });
  await app.register(swagger, {
    transform: ({ schema, url }) => ({ schema: schema && documented(schema), url }),
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'EventDBX',
        version: options.version,
        description:
          'Event-sourced, write-side database. Errors are application/problem+json with a stable `code`.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
        schemas: { Problem: { ...problem, required: [...problem.required] } },
      },
      security: [{ bearer: [] }],
    },
  });
  await systemRoutes(app, ctx);
  await aggregateRoutes(app, ctx);
  for (const extra of options.extraRoutes ?? []) await extra(app, ctx);
  return { app, ctx, drain: () => (draining = true) };
}
