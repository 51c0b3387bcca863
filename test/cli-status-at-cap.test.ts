/**
 * `status` while the server has max_connections open (qa-retest NEW-1): its /health request is never
 * taken, and the CLI ended mid-await with exit code 13 and no word. It now waits its 5 s, says what it
 * may be, and exits 1.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { project, startServer } from './helpers/cli.js';

describe('status against a server at its connection cap', () => {
  it('says the server does not answer /health and why it may not, with exit 1', async () => {
    const p = await project();
    (p.env as Record<string, string>).EVENTDBX_MAX_CONNECTIONS = '2';
    const server = await startServer(p);
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const s = net.connect(server.port, '127.0.0.1');
        s.on('error', () => undefined);
        held.push(s);
      }
      await new Promise((r) => setTimeout(r, 300));
      const r = await p.cli(['status']);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toMatch(/^health\s+not answering$/m);
      expect(r.stderr).toMatch(
        /^error: the server at PID \d+ does not answer GET \/health \(nothing within 5 s\): it may have max_connections open .*\[EDBX_ERR_SERVER_NOT_ANSWERING\]\n$/,
      );
    } finally {
      for (const s of held) s.destroy();
      await server.stop();
      await p.cleanup();
    }
  }, 30_000);
});
