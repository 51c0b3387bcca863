/**
 * The local control channel: a Unix socket in the data dir (mode 0600, so only the owner of the data
 * dir can administer) through which CLI commands run on the server's open store while it runs.
 * Protocol, one request per connection: the client sends one JSON request line; the server answers
 * `{"ack":true}` at once; the client confirms with `{"go":true}`, and only then does the command run;
 * the server sends a `{"keepalive":true}` or `{"progress":[done,total]}` line at least every second
 * while it works, then the JSON response line. So a client can tell a long operation (verify) from a
 * server that does not answer (stopped, hung) without a limit on the operation itself — and a client
 * that gave up waiting for the acknowledgement knows its command never runs: a paused server that
 * resumes finds the request but not the confirmation (the client closed the connection instead).
 * A long listing (`aggregate list`) asked with `stream` comes as `{"items":[...]}` lines, a page at a
 * time as the store is read, before the response line, which counts them: only that line says the
 * listing is complete (a connection that ends before it is an interrupted command, never a short list).
 */
import { readFileSync } from 'node:fs';
import { chmod, lstat, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Writable } from 'node:stream';
import {
  type EventDbxError,
  type ErrorCode,
  ERRORS,
  err,
  throwIfAborted,
  toEventDbxError,
} from '../core/errors.js';
import type { KeyProof } from '../core/crypto/key-proof.js';
import { jsonShape, tooDeep } from '../core/json-nesting.js';
import { RepeatLog } from '../core/repeat-log.js';
import { logAcceptErrors } from './accept-errors.js';
import { Cancellations } from './cancellations.js';
import { jsonPieces } from './json-pieces.js';
import type { IssuedBy } from '../core/event.js';

export const SOCKET_NAME = 'control.sock';
/** The server's PID file in its data dir (written once it listens). */
export const PID_FILE = 'eventdbx.pid';
export const socketPath = (dataDir: string): string => path.join(dataDir, SOCKET_NAME);

export interface ControlRequest {
  readonly op: string;
  readonly args: Record<string, unknown>;
  readonly identity: IssuedBy;
  /** Proof of the keys the command was given (never the keys), checked before the command runs. */
  readonly proof?: KeyProof | undefined;
  /** The client takes a listing a page at a time (`items` lines); without it, a listing comes whole. */
  readonly stream?: boolean;
}

type ControlResponse =
  | { ok: true; result: unknown; items?: number }
  | { ok: false; code: string; params: Record<string, unknown> };

/**
 * What a handler returns for a listing asked with `stream`: its pages are sent as they are read, each
 * once the client has taken the one before, so neither side holds more than a page or two.
 */
export class StreamedAnswer {
  constructor(readonly pages: AsyncIterable<readonly unknown[]>) {}
}

/**
 * `signal` is aborted when the command's client goes away before the answer (Ctrl-C of the CLI) with
 * EDBX_ERR_CANCELLED, or when the server stops with EDBX_ERR_SHUTTING_DOWN: long reads stop there.
 */
export type ControlHandler = (
  req: ControlRequest,
  progress: (done: number, total: number) => void,
  signal: AbortSignal,
) => Promise<unknown>;

const MAX_REQUEST = 4 * 1024 * 1024;
/** The client's confirmation that it still waits for the command it sent. */
const GO = '{"go":true}\n';
const KEEPALIVE_MS = 1000;
/** How long the client waits for the server's acknowledgement (connection included). */
const HANDSHAKE_MS = 5000;
/** How long the client waits between two reads once acknowledged (keepalives come every second). */
const IDLE_MS = 15_000;

/** Where the control socket says what went wrong on the server's side (the server's log). */
export interface ControlLog {
  info(fields: object, message: string): void;
  /** Connections the socket cannot accept (accept-errors.ts); without it they are not logged. */
  warn?(fields: object, message: string): void;
  error(fields: object, message: string): void;
  /** The access log's lines (`EVENTDBX_LOG_LEVEL=debug`): one per command answered. */
  debug?(fields: object, message: string): void;
  readonly level?: string;
}

/**
 * The control socket's lines of the access log (debug level, as the HTTP side's): one per command
 * answered, with the operation, who ran it (the CLI's OS user), its outcome's code, how long it took
 * and the items a listing sent — never its arguments (payload values, keys). Undefined at other levels.
 */
function accessLog(
  log: ControlLog | undefined,
): ((req: Partial<ControlRequest> | undefined, res: ControlResponse, ms: number) => void) | undefined {
  if (!log?.debug || (log.level !== 'debug' && log.level !== 'trace')) return undefined;
  // (A request that is not a JSON object, answered as invalid, is logged without an op.)
  return (sent, res, ms) => {
    const req: Partial<ControlRequest> = typeof sent === 'object' && sent !== null ? sent : {};
    const by = req.identity;
    log.debug!(
      {
        channel: 'control',
        ...(typeof req.op === 'string' ? { op: req.op.slice(0, 64) } : {}),
        ...(by && typeof by.group === 'string' && typeof by.user === 'string'
          ? { issued_by: { group: by.group.slice(0, 64), user: by.user.slice(0, 64) } }
          : {}),
        ...(res.ok ? {} : { code: res.code }),
        ...(res.ok && res.items !== undefined ? { items: res.items } : {}),
        duration_ms: Math.round(ms * 10) / 10,
      },
      'command',
    );
  };
}

/**
 * Serve the control socket. `stop` (aborted when the server stops) aborts the commands still running
 * with its reason; one that meets the store already closed is answered with that reason too. `log`
 * gets, like the HTTP side's log, each command stopped because its CLI went away (info) and each
 * server error (error; an internal one with its stack) — never the command's arguments. Identical
 * server errors are collapsed alike (core/repeat-log.ts, for `repeatIntervalMs`): the counts left out
 * are logged once the interval has passed, and when the server stops or the socket closes.
 */
export async function serveControl(
  dataDir: string,
  handler: ControlHandler,
  stop: AbortSignal = new AbortController().signal,
  log?: ControlLog,
  repeatIntervalMs?: number,
): Promise<net.Server> {
  const file = socketPath(dataDir);
  await rm(file, { force: true });
  const commands = new Cancellations(stop);
  const lines = log && new RepeatLog<'error'>(log, repeatIntervalMs);
  const warnings = log?.warn && new RepeatLog<'warn'>({ warn: log.warn.bind(log) }, repeatIntervalMs);
  const accessLine = accessLog(log);
  const server = net.createServer((socket) => {
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        socket.destroy();
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      socket.removeAllListeners('data');
      const send = (msg: unknown) => {
        if (socket.writable) socket.write(JSON.stringify(msg) + '\n');
      };
      send({ ack: true });
      // Run only once the client confirms it still waits: one that gave up meanwhile (a server paused
      // past the client's handshake limit) has closed the connection, and its command is dropped.
      const unconfirmed = setTimeout(() => socket.destroy(), HANDSHAKE_MS);
      const confirmed = () => {
        clearTimeout(unconfirmed);
        socket.removeAllListeners('data');
        socket.removeListener('close', dropped);
        run(socket, line, send);
      };
      const dropped = () => clearTimeout(unconfirmed);
      socket.once('close', dropped);
      const onConfirm = (chunk: string) => {
        buf += chunk;
        if (buf.includes('\n')) {
          if (buf.startsWith(GO)) confirmed();
          else socket.destroy();
        } else if (buf.length > GO.length) socket.destroy();
      };
      socket.on('data', onConfirm);
      if (buf.length > 0) onConfirm('');
    });
  });
  function run(socket: net.Socket, line: string, send: (msg: unknown) => void): void {
    const keepalive = setInterval(() => send({ keepalive: true }), KEEPALIVE_MS);
    const command = commands.open();
    let answered = false;
    // The client closed its end (Ctrl-C) before the answer: no one will read it.
    socket.once('close', () => {
      if (!answered) command.cancel();
    });
    const progress = (done: number, total: number) => send({ progress: [done, total] });
    // One write per page: keepalives go between whole lines, never inside one.
    const sendItems = async (items: readonly unknown[]) => {
      if (!socket.destroyed && !socket.write(`${JSON.stringify({ items })}\n`)) await drained(socket);
      // The client went away: its close cancels the command (at once, or once the event is emitted).
      if (socket.destroyed && !socket.closed) await new Promise((r) => socket.once('close', r));
      throwIfAborted(command.signal);
    };
    const began = performance.now();
    let req: ControlRequest | undefined;
    try {
      req = JSON.parse(line) as ControlRequest;
    } catch {
      // refused by respond
    }
    void respond(line, req, progress, command.signal, sendItems).then(async (res) => {
      answered = true;
      accessLine?.(req, res, performance.now() - began);
      command.end();
      clearInterval(keepalive);
      await writeAnswer(socket, res);
    });
  }
  /** Answer `line`, parsed as `req` (undefined: it is not JSON). */
  async function respond(
    line: string,
    req: ControlRequest | undefined,
    progress: (done: number, total: number) => void,
    signal: AbortSignal,
    sendItems: (items: readonly unknown[]) => Promise<void>,
  ): Promise<ControlResponse> {
    let op: string | undefined;
    try {
      // Not JSON's own message: it quotes the line (a payload value, say), and would be logged as a
      // server error.
      if (req === undefined)
        throw err('EDBX_ERR_INVALID_JSON', {
          reason: 'the control request is not one JSON line: use the eventdbx CLI of this version',
        });
      op = typeof req.op === 'string' ? req.op : undefined;
      // Before an operation walks its arguments (String() of a nested array, a message quoting it):
      // a few thousand levels would overflow the stack.
      const deep = tooDeep(
        jsonShape(line).depth,
        'the control request',
        'use the eventdbx CLI of this version',
      );
      if (deep !== undefined) throw err('EDBX_ERR_INVALID_JSON', { reason: deep });
      const result = await handler(req, progress, signal);
      if (!(result instanceof StreamedAnswer)) return { ok: true, result };
      let items = 0;
      for await (const page of result.pages) {
        await sendItems(page);
        items += page.length;
      }
      return { ok: true, result: null, items };
    } catch (e) {
      const x = toEventDbxError(e);
      // The server stops under a running command (a verify): its reads are stopped, or meet the store
      // already closed. The command was cut off, which the client reports as such.
      const stopping = stop.aborted || !server.listening;
      if (stopping && (x.code === 'EDBX_ERR_STORE_NOT_OPEN' || x.code === 'EDBX_ERR_SHUTTING_DOWN'))
        return {
          ok: false,
          code: 'EDBX_ERR_COMMAND_INTERRUPTED',
          // It failed on the closed store: whatever it was, it changed nothing.
          params: { pid: process.pid, reason: 'the server stopped while the command ran', applied: false },
        };
      const where = { channel: 'control', ...(op === undefined ? {} : { op }) };
      if (x.code === 'EDBX_ERR_CANCELLED')
        log?.info({ code: x.code, ...where }, 'command stopped: the CLI went away before the answer');
      else if (x.status >= 500)
        lines?.note(`${x.code}:${x.message}`, {
          level: 'error',
          fields: {
            code: x.code,
            status: x.status,
            ...where,
            ...(x.code === 'EDBX_ERR_INTERNAL' ? { err: e } : {}),
          },
          msg: x.message,
        });
      return { ok: false, code: x.code, params: x.params };
    }
  }
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => resolve());
    });
  } finally {
    process.umask(old);
  }
  // Made 0600 under that umask (Linux, macOS): then nothing is changed by name, which would follow a
  // link put in the socket's place meanwhile (qa-pen #3). Only a platform that ignored the umask for
  // a socket has it changed, and only while a socket is what is there.
  const made = await lstat(file).catch(() => undefined);
  if (!made?.isSocket()) {
    server.close();
    throw err('EDBX_ERR_FILE_REFUSED', { path: file, what: 'not the socket this server just made' });
  }
  if ((made.mode & 0o777) !== 0o600) await chmod(file, 0o600);
  if (warnings) logAcceptErrors(server, warnings, 'control');
  // A stopping server exits before the socket's last connection ends: its stop logs the counts.
  const closeLines = () => {
    lines?.close();
    warnings?.close();
  };
  stop.addEventListener('abort', closeLines, { once: true });
  server.once('close', () => {
    stop.removeEventListener('abort', closeLines);
    closeLines();
  });
  return server;
}

/** Bytes of an answer gathered before they are written (and other work may run). */
const WRITE_PIECE = 1 << 20;

/**
 * Write an answer line a piece at a time, letting other work run between pieces and waiting for the
 * client to read what was sent: a large answer neither stalls the server nor piles up in its memory.
 */
async function writeAnswer(socket: net.Socket, res: ControlResponse): Promise<void> {
  let pending = '';
  for (const piece of jsonPieces(res)) {
    pending += piece;
    if (pending.length < WRITE_PIECE) continue;
    if (socket.destroyed) return;
    if (!socket.write(pending)) await drained(socket);
    pending = '';
    await new Promise((r) => setImmediate(r));
  }
  if (!socket.destroyed) socket.end(`${pending}\n`);
}

/** Resolves once a stream whose buffer is full (a socket, stdout) took what was written, or closed. */
export function drained(stream: Writable): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('drain', done);
    stream.once('close', done);
  });
}

/** How long `callControl` waits; tests shorten them. */
export interface ControlTimeouts {
  /** For the server's first bytes (connection included). */
  readonly handshakeMs?: number;
  /** Between two reads once the server answered (keepalives come every second). */
  readonly idleMs?: number;
}

/**
 * Send a request to a running server. Resolves `undefined` when no server listens (no socket, or a
 * stale one), so the caller opens the store itself. A server that sends nothing within 5 s, or goes
 * silent for 15 s afterwards, is `EDBX_ERR_SERVER_NOT_ANSWERING` (never a hang).
 * `onItems` gets the pages of a listing asked with `stream`, in order; while the promise it returns
 * is pending (the output is full), the socket is not read and the idle limit does not run: the
 * server waits for the CLI's reader, not the other way round. A rejection ends the call with it.
 */
export function callControl(
  dataDir: string,
  req: ControlRequest,
  onProgress?: (done: number, total: number) => void,
  timeouts: ControlTimeouts = {},
  onItems?: (items: unknown[]) => void | Promise<void>,
): Promise<{ result: unknown } | undefined> {
  const idleMs = timeouts.idleMs ?? IDLE_MS;
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath(dataDir));
    // The chunks of the line being read: an answer can be hundreds of MB, so each chunk is searched
    // for its end once and the line joined once (appending and searching the whole was quadratic).
    let pending: string[] = [];
    let connected = false;
    // Sent the confirmation: from here on the command may run, whatever happens to the connection.
    let confirmed = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    // Items received, and pages whose output is still being written.
    let received = 0;
    let writing = 0;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const wait = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          settle(() => {
            socket.destroy();
            reject(
              err('EDBX_ERR_SERVER_NOT_ANSWERING', {
                pid: serverPid(dataDir),
                seconds: ms / 1000,
                command: confirmed ? 'running' : 'not-run',
              }),
            );
          }),
        ms,
      );
    };
    wait(timeouts.handshakeMs ?? HANDSHAKE_MS);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write(JSON.stringify(req) + '\n');
    });
    const onLine = (line: string) => {
      let msg: ControlMessage;
      try {
        msg = JSON.parse(line) as ControlMessage;
      } catch {
        return; // the end of the connection reports a missing answer
      }
      if ('ack' in msg && !confirmed && !settled) {
        confirmed = true;
        socket.write(GO);
      } else if ('progress' in msg) onProgress?.(msg.progress[0], msg.progress[1]);
      else if ('ok' in msg) settle(() => (msg.ok ? answered(msg) : reject(rebuild(msg.code, msg.params))));
      else if ('items' in msg) onPage(msg.items);
    };
    const onPage = (items: unknown[]) => {
      if (settled) return;
      received += items.length;
      let written: void | Promise<void>;
      try {
        written = onItems?.(items);
      } catch (e) {
        settle(() => (socket.destroy(), reject(e)));
        return;
      }
      if (!written) return;
      writing++;
      socket.pause();
      clearTimeout(timer);
      written.then(
        () => {
          if (--writing > 0) return;
          // Even once answered: the socket reads on to the server's end of the connection.
          socket.resume();
          if (!settled) wait(idleMs);
        },
        (e: unknown) => settle(() => (socket.destroy(), reject(e))),
      );
    };
    const answered = (msg: { result: unknown; items?: number }) => {
      // A listing is complete only when the server's count matches what arrived.
      if (msg.items !== undefined && msg.items !== received)
        reject(interrupted(`the answer ended after ${received} of ${msg.items} items`));
      else resolve({ result: msg.result });
    };
    socket.on('data', (d: string) => {
      // Bytes arriving are the server answering, even in the middle of a long answer line.
      if (!settled && writing === 0) wait(idleMs);
      let start = 0;
      for (let nl = d.indexOf('\n'); nl >= 0; nl = d.indexOf('\n', start)) {
        pending.push(d.slice(start, nl));
        const line = pending.join('');
        pending = [];
        start = nl + 1;
        onLine(line);
      }
      if (start < d.length) pending.push(d.slice(start));
    });
    socket.on('error', (e: NodeJS.ErrnoException) =>
      settle(() => {
        if (!connected && (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')) resolve(undefined);
        // This process out of descriptors (EMFILE): its own limit to raise, not the server's doing.
        else if (!connected && (e.code === 'EMFILE' || e.code === 'ENFILE')) reject(toEventDbxError(e));
        else if (!connected) reject(err('EDBX_ERR_STORE_IO', { reason: `control socket: ${e.message}` }));
        else reject(interrupted(e.code ?? e.message));
      }),
    );
    socket.on('close', () => settle(() => reject(interrupted('connection closed without an answer'))));
    // Before the confirmation the server cannot have run the command (it runs only confirmed ones): a
    // server out of descriptors accepts a connection and closes it at once, before reading a byte.
    const interrupted = (reason: string) =>
      err('EDBX_ERR_COMMAND_INTERRUPTED', {
        pid: serverPid(dataDir),
        reason,
        ...(confirmed ? {} : { applied: false, taken: false }),
      });
  });
}

type ControlMessage =
  | ControlResponse
  | { ack: true }
  | { keepalive: true }
  | { progress: [done: number, total: number] }
  | { items: unknown[] };

/** The PID of the data dir's server, for messages ('unknown' when its PID file cannot be read). */
function serverPid(dataDir: string): number | string {
  try {
    return (JSON.parse(readFileSync(path.join(dataDir, PID_FILE), 'utf8')) as { pid: number }).pid;
  } catch {
    return 'unknown';
  }
}

function rebuild(code: string, params: Record<string, unknown>): EventDbxError {
  return code in ERRORS ? err(code as ErrorCode, params) : err('EDBX_ERR_INTERNAL', { reason: code });
}
