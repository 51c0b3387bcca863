/**
 * The CLI's end of the control channel when the server goes away mid-command: the outcome is unknown,
 * and the error says so (it is not a storage error).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { callControl, socketPath } from '../../src/server/control.js';
import { expectCode } from '../helpers/expect.js';

const dirs: string[] = [];
const servers: net.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) s.close();
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A control socket that acknowledges a command, then ends the connection as `end` does. */
async function dyingServer(end: (socket: net.Socket) => void): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-ctl-'));
  dirs.push(dir);
  await writeFile(path.join(dir, 'eventdbx.pid'), JSON.stringify({ pid: 4242 }));
  const server = net.createServer((socket) => {
    socket.once('data', () => {
      socket.write('{"ack":true}\n');
      end(socket);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(socketPath(dir), r));
  return dir;
}

const request = { op: 'aggregate.restore', args: {}, identity: { group: 'local', user: 'ana' } };

describe('a command the server did not finish', () => {
  it.each([
    ['closes the connection', (s: net.Socket) => s.end()],
    ['drops the connection', (s: net.Socket) => s.destroy()],
  ])('is reported as interrupted, with an unknown outcome, when the server %s', async (_, end) => {
    const dir = await dyingServer(end);
    const e = await expectCode(callControl(dir, request), 'EDBX_ERR_COMMAND_INTERRUPTED');
    expect(e.message).toMatch(/^the server \(PID 4242\) went away before the command finished .*unknown/);
  });
});
