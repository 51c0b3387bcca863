/**
 * Shared fixtures of the plugin tests: an in-process store with a delivery host, waiting for a plugin
 * to catch up, and the receivers the network sinks deliver to (an HTTP server and a TCP listener on
 * 127.0.0.1), plus a logger that records lines.
 */
import http from 'node:http';
import net from 'node:net';
import type { EventRecord } from '../../src/core/event.js';
import { DeliveryHost, pluginStatus } from '../../src/plugins/index.js';
import type { PluginInput, PluginLogger, PluginStatus } from '../../src/plugins/index.js';
import type { DeliveryItem } from '../../src/plugins/types.js';
import { MemoryEngine } from '../../src/storage/index.js';
import { EventStore } from '../../src/store/index.js';

export const jane = { issuedBy: { group: 'admin', user: 'jane' } };

/** Short retry delays so fault tests run quickly. */
export const FAST: PluginInput = { backoff_ms: 5, backoff_max_ms: 50, timeout_ms: 2_000 };

export const openStore = () => EventStore.open({ engine: new MemoryEngine() });

/** Delivery items for driving a sink directly: `patient/p-<n>` at version 1, positions from `from`. */
export function deliveryItems(count: number, from = 1): DeliveryItem[] {
  const at = '2026-11-26T12:00:00.000Z';
  const by = { group: 'doctors', user: 'ana' };
  return Array.from({ length: count }, (_, i) => {
    const n = from + i;
    const payload = { name: `patient ${n}`, ward: String(n % 9) };
    const record: EventRecord = {
      aggregate_type: 'patient',
      aggregate_id: `p-${n}`,
      event_type: 'patient-added',
      payload,
      metadata: { event_id: `e-${n}`, created_at: at, issued_by: by },
      version: 1,
      position: n,
      hash: '',
      merkle_root: '',
    };
    return { record, row: { state: payload, created_at: at, created_by: by } };
  });
}

export interface LogLine {
  readonly level: string;
  readonly obj: object;
  readonly msg: string;
}

export function recordingLogger(): PluginLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg?: string) =>
    void lines.push({ level, obj, msg: msg ?? '' });
  return {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

export async function startHost(
  store: EventStore,
  log: PluginLogger = recordingLogger(),
): Promise<DeliveryHost> {
  const host = new DeliveryHost(store, { log, stopGraceMs: 2_000 });
  await host.start();
  return host;
}

/** Poll until `check` holds (a deadline, not a timed assertion: slow machines just wait longer). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function statusOf(store: EventStore, name: string): Promise<PluginStatus> {
  const s = (await pluginStatus(store)).plugins.find((p) => p.name === name);
  if (!s) throw new Error(`plugin ${name} is not configured`);
  return s;
}

/** Until the plugin acknowledged every committed event. */
export const caughtUp = (store: EventStore, name: string) =>
  waitFor(`${name} to catch up`, async () => {
    const s = await statusOf(store, name);
    return s.lag === 0 && s.state === 'idle' ? s : undefined;
  });

/** The user events of the store in position order (what plugins must deliver). */
export async function userEvents(store: EventStore, from = 1): Promise<EventRecord[]> {
  return (await store.readLog(from, 1_000_000)).filter((e) => !e.aggregate_type.startsWith('$'));
}

// ------------------------------------------------------------------------------------ receivers

export interface HttpReceiver {
  readonly url: string;
  /** Bodies answered 2xx, in arrival order. */
  readonly accepted: EventRecord[];
  /** Every request: status answered, Idempotency-Key and the headers. */
  readonly requests: Array<{ status: number; key: string | undefined; headers: http.IncomingHttpHeaders }>;
  /** Decide the status of a request (default 200); may return a promise to delay the answer. */
  respond: (body: EventRecord, n: number) => number | Promise<number>;
  close(): Promise<void>;
}

/** An HTTP receiver on 127.0.0.1, on `port` (default: any free one). */
export async function httpReceiver(port = 0): Promise<HttpReceiver> {
  const r: Omit<HttpReceiver, 'url' | 'close'> = { accepted: [], requests: [], respond: () => 200 };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', async () => {
      const record = JSON.parse(body) as EventRecord;
      const status = await r.respond(record, r.requests.length);
      r.requests.push({
        status,
        key: req.headers['idempotency-key'] as string | undefined,
        headers: req.headers,
      });
      if (status >= 200 && status < 300) r.accepted.push(record);
      res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as net.AddressInfo).port;
  return Object.assign(r, {
    url: `http://127.0.0.1:${bound}/events`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

export interface TcpReceiver {
  readonly port: number;
  readonly lines: string[];
  readonly connections: () => number;
  /** Close every open connection gracefully (still reading what is in flight): the sink must reconnect. */
  endConnections(): void;
  close(): Promise<void>;
}

export async function tcpReceiver(port = 0): Promise<TcpReceiver> {
  const lines: string[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    lines,
    connections: () => connections,
    endConnections: () => sockets.forEach((s) => s.end()),
    close: () =>
      new Promise<void>((resolve) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
}
