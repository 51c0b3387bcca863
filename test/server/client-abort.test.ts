/**
 * A client that goes away mid-request is not a server error (QA item 6: each abort logged
 * `"level":50 … "msg":"unhandled error"` with a stack trace).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, testServer } from '../helpers/http.js';

async function until(check: () => boolean, what: string, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('client aborts', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await testServer({ logs: true });
  });
  afterAll(() => s?.close());

  it.each(['close', 'reset'] as const)(
    'a body cut short (%s) is logged at debug level, not as an error',
    async (how) => {
      const sock = net.connect(s.port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.write(
        `POST /v1/transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"events":',
      );
      const from = s.logs.length;
      // The server has the request once its handlers run; then cut the connection.
      await new Promise((r) => setTimeout(r, 50));
      if (how === 'reset') sock.resetAndDestroy();
      else sock.end();
      const about = () =>
        s.logs.slice(from).filter((l) => l.err !== undefined || /abort|went away/i.test(String(l.msg)));
      await until(() => about().length > 0, 'the server to log the aborted request');
      expect(
        s.logs.slice(from).filter((l) => (l.level as number) >= 40),
        JSON.stringify(about()),
      ).toEqual([]);
      sock.destroy();
    },
  );
});
