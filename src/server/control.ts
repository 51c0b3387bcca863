/**
 * The local control channel: a Unix socket in the data dir (mode 0600, so only the owner of the data
 * dir can administer) through which CLI commands run on the server's open store while it runs.
 * Protocol: one JSON request line, one JSON response line per connection.
 */
import { chmod, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { type EventDbxError, type ErrorCode, ERRORS, err, toEventDbxError } from '../core/errors.js';
import type { IssuedBy } from '../core/event.js';

export const SOCKET_NAME = 'control.sock';
export const socketPath = (dataDir: string): string => path.join(dataDir, SOCKET_NAME);

export interface ControlRequest {
  readonly op: string;
  readonly args: Record<string, unknown>;
  readonly identity: IssuedBy;
}

type ControlResponse =
  { ok: true; result: unknown } | { ok: false; code: string; params: Record<string, unknown> };

export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

const MAX_REQUEST = 4 * 1024 * 1024;

export async function serveControl(dataDir: string, handler: ControlHandler): Promise<net.Server> {
  const file = socketPath(dataDir);
  await rm(file, { force: true });
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
      buf = '';
      void respond(line).then((res) => socket.end(JSON.stringify(res) + '\n'));
    });
  });
  async function respond(line: string): Promise<ControlResponse> {
    try {
      const req = JSON.parse(line) as ControlRequest;
      return { ok: true, result: await handler(req) };
    } catch (e) {
      const x = toEventDbxError(e);
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
  await chmod(file, 0o600);
  return server;
}

/**
 * Send a request to a running server. Resolves `undefined` when no server listens (no socket, or a
 * stale one), so the caller opens the store itself.
 */
export function callControl(dataDir: string, req: ControlRequest): Promise<{ result: unknown } | undefined> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath(dataDir));
    let buf = '';
    let connected = false;
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write(JSON.stringify(req) + '\n');
    });
    socket.on('data', (d: string) => (buf += d));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected && (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')) resolve(undefined);
      else reject(err('EDBX_ERR_STORE_IO', { reason: `control socket: ${e.message}` }));
    });
    socket.on('end', () => {
      try {
        const res = JSON.parse(buf) as ControlResponse;
        if (res.ok) resolve({ result: res.result });
        else reject(rebuild(res.code, res.params));
      } catch {
        reject(
          err('EDBX_ERR_STORE_IO', { reason: 'the server closed the control connection without an answer' }),
        );
      }
    });
  });
}

function rebuild(code: string, params: Record<string, unknown>): EventDbxError {
  return code in ERRORS ? err(code as ErrorCode, params) : err('EDBX_ERR_INTERNAL', { reason: code });
}
