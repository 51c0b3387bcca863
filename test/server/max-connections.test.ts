/**
 * Regression of the QA audit's finding 10: there was no cap on concurrent connections. The server now
 * keeps at most `max_connections` open (Node's `server.maxConnections`; config file, `config
 * --max-connections` or `EVENTDBX_MAX_CONNECTIONS`, default 1024): one over it is closed at once,
 * counted and logged, and a freed slot serves again.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_CONNECTIONS, loadConfig } from '../../src/config/config.js';
import { expectCode } from '../helpers/expect.js';
import { type Project, type RunningServer, project, startServer } from '../helpers/cli.js';
import { rawRequest, testServer } from '../helpers/http.js';

/** A connection that asked for /health and keeps its connection open (keep-alive). */
interface Held {
  /** 'answered' once the server answered 200; 'closed' when it closed without a byte. */
  readonly outcome: Promise<'answered' | 'closed'>;
  readonly socket: net.Socket;
}

function hold(port: number): Held {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const outcome = new Promise<'answered' | 'closed'>((resolve) => {
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      data += d;
      if (data.startsWith('HTTP/1.1 200')) resolve('answered');
    });
    socket.on('close', () => resolve(data ? 'answered' : 'closed'));
    socket.on('connect', () => socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'));
  });
  return { outcome, socket };
}

/** Until the server counts fewer than `n` open connections (it sees a client's close a moment later). */
async function openBelow(server: net.Server, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  const count = () => new Promise<number>((r, j) => server.getConnections((e, c) => (e ? j(e) : r(c))));
  while ((await count()) >= n) {
    if (Date.now() > deadline) throw new Error(`the server still has ${n} connections open`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const held: Held[] = [];
afterEach(() => {
  for (const h of held.splice(0)) h.socket.destroy();
});

describe('a cap on open connections (QA audit #10)', () => {
  it('closes the connection over the cap at once, counts and logs it; a freed slot answers /health', async () => {
    const cap = 3;
    // Keep-alive and idle timeouts far longer than the test: only the cap closes a connection.
    const s = await testServer({
      maxConnections: cap,
      logs: true,
      timeouts: { keepAliveMs: 60_000, idleMs: 60_000 },
    });
    try {
      for (let i = 0; i < cap; i++) {
        held.push(hold(s.port));
        expect(await held[i]!.outcome).toBe('answered');
      }
      const extra = hold(s.port);
      held.push(extra);
      expect(await extra.outcome).toBe('closed');
      // The ones within the cap are still open and served.
      expect(held.slice(0, cap).every((h) => !h.socket.destroyed)).toBe(true);

      held[0]!.socket.destroy();
      await openBelow(s.app.server, cap);
      expect((await rawRequest(s.port, 'GET /health HTTP/1.1\r\nHost: x')).status).toBe(200);

      const metrics = await rawRequest(
        s.port,
        `GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}`,
      );
      expect(metrics.text).toMatch(/^eventdbx_http_connections_dropped_total 1$/m);
      // How close the server is to the cap: the two held connections and this one.
      expect(metrics.text).toMatch(/^eventdbx_http_connections_open 3$/m);
      const dropped = s.logs.filter((l) => String(l.msg).includes('max_connections'));
      expect(dropped).toHaveLength(1);
      expect(dropped[0]).toMatchObject({ level: 40, max_connections: cap, ip: '127.0.0.1' });
    } finally {
      await s.close();
    }
  });

  describe('configuration', () => {
    let p: Project | undefined;
    let server: RunningServer | undefined;
    afterEach(async () => {
      await server?.stop();
      server = undefined;
      await p?.cleanup();
      p = undefined;
    });

    it('defaults to 1024; the file and EVENTDBX_MAX_CONNECTIONS set it; a bad value names the variable', async () => {
      const none = { EVENTDBX_CONFIG: '/nonexistent/.eventdbx.json' };
      expect(DEFAULT_MAX_CONNECTIONS).toBe(1024);
      expect((await loadConfig(undefined, none)).maxConnections).toBe(1024);
      expect((await loadConfig(undefined, { ...none, EVENTDBX_MAX_CONNECTIONS: '64' })).maxConnections).toBe(
        64,
      );
      for (const bad of ['0', '-1', 'lots', '1.5']) {
        const e = await expectCode(
          loadConfig(undefined, { ...none, EVENTDBX_MAX_CONNECTIONS: bad }),
          'EDBX_ERR_CONFIG_INVALID',
        );
        expect(e.message).toContain('EVENTDBX_MAX_CONNECTIONS');
      }

      p = await project();
      const set = await p.cli(['config', '--max-connections', '2', '--json']);
      expect(set.code, set.stderr).toBe(0);
      expect(JSON.parse(set.stdout).config.max_connections).toBe(2);
      const refused = await p.cli(['config', '--max-connections', '0']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('--max-connections');
    });

    it('the configured cap reaches a started server', async () => {
      p = await project();
      expect((await p.cli(['config', '--max-connections', '4'])).code).toBe(0);
      server = await startServer(p, ['--restrict=false']);
      // A connection of the start-up check may still be open: at most the cap, never all eight.
      for (let i = 0; i < 8; i++) held.push(hold(server.port));
      const outcomes = await Promise.all(held.map((h) => h.outcome));
      const answered = outcomes.filter((o) => o === 'answered').length;
      expect(answered).toBeGreaterThanOrEqual(3);
      expect(answered).toBeLessThanOrEqual(4);
      // The warning reaches the server's output a moment later.
      const deadline = Date.now() + 10_000;
      while (!server.output().includes('max_connections') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(server.output()).toContain('connection closed at once: the server has max_connections open');
    });
  });
});
