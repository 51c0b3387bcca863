/**
 * An in-process server for HTTP edge tests: `buildServer` on the in-memory engine, listening on a real
 * socket on 127.0.0.1, with an admin token; and `raw()` to send exact bytes and read the exact answer
 * (fetch would fix up what these tests need to get wrong on purpose).
 */
import net from 'node:net';
import { afterEach } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { type ServerOptions, buildServer } from '../../src/server/app.js';
import type { StorageEngine } from '../../src/storage/engine.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { EventStore, type EventStoreOptions } from '../../src/store/index.js';
import { createToken } from '../../src/store/tokens.js';

export interface TestServer {
  readonly app: FastifyInstance;
  readonly store: EventStore;
  readonly url: string;
  readonly port: number;
  readonly token: string;
  /** Log lines written by the server (pino JSON), when `logs: true`. */
  readonly logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function testServer(
  o: Partial<Omit<ServerOptions, 'store' | 'version' | 'restrict'>> & {
    logs?: boolean;
    /** The engine under the store (default: a new in-memory one). */
    engine?: StorageEngine;
    /** Options of the store (limits), beside its engine. */
    storeOptions?: Omit<EventStoreOptions, 'engine'>;
  } = {},
): Promise<TestServer> {
  const { logs: capture, engine, storeOptions, ...rest } = o;
  const store = await EventStore.open({ ...storeOptions, engine: engine ?? new MemoryEngine() });
  const logs: Array<Record<string, unknown>> = [];
  const { app } = await buildServer({
    store,
    version: 'test',
    restrict: 'false',
    ...rest,
    ...(capture
      ? {
          logger: {
            level: 'trace',
            stream: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
          },
        }
      : {}),
  });
  const { token } = await createToken(
    store,
    { group: 'admin', user: 'admin', expiration: 3600 },
    { issuedBy: { group: 'local', user: 'test' } },
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as net.AddressInfo).port;
  return {
    app,
    store,
    url: `http://127.0.0.1:${port}`,
    port,
    token,
    logs,
    close: async () => {
      await app.close();
      await store.close();
    },
  };
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly text: string;
  readonly body: any;
}

/** Parse one HTTP/1.1 response (the server closes the connection or sends Content-Length). */
export function parseResponse(data: string): RawResponse | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = data.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const text = data.slice(end + 4);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, text, body };
}

/**
 * Open a socket, let `drive` write to it (possibly slowly), and resolve with the response once the
 * server closes the connection, or with `undefined` if it closed without answering.
 */
export function raw(
  port: number,
  drive: (socket: net.Socket) => void | Promise<void>,
): Promise<RawResponse | undefined> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(parseResponse(data)));
    socket.on('connect', () => {
      Promise.resolve(drive(socket)).catch(reject);
    });
  });
}

/** A request whose connection stays open (`openRequest`). */
export interface OpenRequest {
  readonly socket: net.Socket;
  /** Its answer as soon as it is whole, or undefined if none came within `ms`. */
  answer(ms?: number): Promise<RawResponse | undefined>;
}

/**
 * Send `head` (the request line and headers, without the blank line that ends them) and keep the
 * connection open: the test sends the body, or part of it, or none, and reads the answer as soon as it
 * is whole, while the connection stays open.
 */
export function openRequest(port: number, head: string): OpenRequest {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let data = '';
  let whole: RawResponse | undefined;
  const waiting = new Set<() => void>();
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    data += d;
    const r = parseResponse(data);
    if (r && r.text.length >= Number(r.headers['content-length'] ?? 0)) {
      whole = r;
      for (const w of waiting) w();
    }
  });
  socket.write(`${head}\r\n\r\n`);
  return {
    socket,
    answer: (ms = 3_000) =>
      new Promise((resolve) => {
        if (whole) return resolve(whole);
        const done = () => {
          clearTimeout(timer);
          waiting.delete(done);
          resolve(whole);
        };
        const timer = setTimeout(done, ms);
        waiting.add(done);
      }),
  };
}

/**
 * `openRequest` whose connections are closed after each test (call at the top of a test file).
 *
 * @example
 * const open = openRequests();
 * const a = open(s.port, head); // closed after the test, however it ends
 */
export function openRequests(): (port: number, head: string) => OpenRequest {
  const opened: OpenRequest[] = [];
  afterEach(() => {
    for (const o of opened.splice(0)) o.socket.destroy();
  });
  return (port, head) => {
    const o = openRequest(port, head);
    opened.push(o);
    return o;
  };
}

/** The JSON of an append of about `bytes` bytes (one event, its payload a note). */
export const appendBodyOf = (bytes: number): string =>
  JSON.stringify({ event_type: 'noted', payload: { note: 'x'.repeat(Math.max(0, bytes - 50)) } });

/** Send `head` + `body` bytes at once and read the answer (the request asks to close the connection). */
export function rawRequest(port: number, head: string, body: Buffer | string = ''): Promise<RawResponse> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return raw(port, (s) => {
    s.write(`${head}\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`);
    s.write(bytes);
  }).then((r) => {
    if (!r) throw new Error('the server closed the connection without an answer');
    return r;
  });
}

/** POST JSON (or exact bytes) with fetch and return status, headers and parsed body. */
export async function post(
  s: TestServer,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${s.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

export async function get(
  s: TestServer,
  path: string,
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${s.token}` } });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}
