/**
 * The CLI's end of the control channel: a server that goes away mid-command leaves an unknown outcome,
 * and the error says so (it is not a storage error); a long answer is read in linear time, and bytes
 * still arriving count as the server answering; a listing comes a page at a time, and only its last
 * line says it is complete.
 */
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { err } from '../../src/core/errors.js';
import { StreamedAnswer, callControl, serveControl, socketPath } from '../../src/server/control.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { EventStore } from '../../src/store/index.js';
import { aggregatePages, schemaPages, tokenPages } from '../../src/store/pages.js';
import { createSchema, listSchemas } from '../../src/store/schemas.js';
import { createToken, listTokens } from '../../src/store/tokens.js';
import { expectCode } from '../helpers/expect.js';
import { GatedEngine } from '../helpers/gated-engine.js';
import { type Logged, collectingLog } from '../helpers/log.js';
import { tempDirs } from '../helpers/temp.js';

const tempDir = tempDirs('edbx-ctl-');
const servers: net.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A control socket that acknowledges a command, then hands the connection to `end`. */
async function dyingServer(end: (socket: net.Socket) => void): Promise<string> {
  const dir = await tempDir();
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

describe('a command the server never took (qa-full #1)', () => {
  it.each([
    ['closes the connection before reading a byte', (s: net.Socket) => s.destroy()],
    [
      'closes the connection once the request came, before acknowledging it',
      (s: net.Socket) => s.once('data', () => s.end()),
    ],
  ])('is reported as not run when the server %s (a server out of descriptors does)', async (_, end) => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'eventdbx.pid'), JSON.stringify({ pid: 4242 }));
    const server = net.createServer(end);
    servers.push(server);
    await new Promise<void>((r) => server.listen(socketPath(dir), r));
    const e = await expectCode(callControl(dir, request), 'EDBX_ERR_COMMAND_INTERRUPTED');
    expect(e.params).toMatchObject({ applied: false, taken: false });
    expect(e.message).toMatch(
      /^the server \(PID 4242\) closed the connection before it took the command \(.+\): the command was not run; run it again/,
    );
  });
});

describe('a long answer (QA4 #1)', () => {
  it('arrives intact through a real control socket when it is tens of MB', async () => {
    const dir = await tempDir();
    const rows = Array.from({ length: 200_000 }, (_, i) => ({
      id: `c-${String(i).padStart(7, '0')}`,
      pad: 'x'.repeat(150),
    }));
    servers.push(await serveControl(dir, async () => rows));
    // Before: each 64 KiB chunk was appended and the whole line searched again (quadratic), and only a
    // complete line counted as the server answering, so this answer outlasted a 2 s idle limit.
    const answer = await callControl(dir, request, undefined, { idleMs: 2_000 });
    expect(answer?.result).toEqual(rows);
  });

  it('is not taken for a server that does not answer while its bytes keep arriving', async () => {
    const parts = 30;
    const dir = await dyingServer((socket) => {
      let i = 0;
      const tick = setInterval(() => {
        if (socket.destroyed) return clearInterval(tick);
        if (i === 0) socket.write('{"ok":true,"result":"');
        if (i < parts) socket.write('a'.repeat(1000));
        else {
          clearInterval(tick);
          socket.end('"}\n');
        }
        i += 1;
      }, 20);
    });
    // The answer takes about 600 ms, thirty times the idle limit, sent steadily in one line.
    const answer = await callControl(dir, request, undefined, { idleMs: 200 });
    expect(answer?.result).toBe('a'.repeat(1000 * parts));
  });

  it('still reports a server that goes silent in the middle of its answer', async () => {
    const dir = await dyingServer((socket) => socket.write('{"ok":true,"result":"aaaa'));
    await expectCode(callControl(dir, request, undefined, { idleMs: 100 }), 'EDBX_ERR_SERVER_NOT_ANSWERING');
  });
});

describe('a command cut off by the server stopping (QA4 #9)', () => {
  it('is reported as interrupted, not as a store that is not open', async () => {
    const dir = await tempDir();
    const store = await EventStore.open({ engine: new MemoryEngine() });
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let stopped!: () => void;
    const stop = new Promise<void>((r) => (stopped = r));
    // A long command (a verify) still reading when the server closes the socket, then the store.
    const control = await serveControl(dir, async () => {
      started();
      await stop;
      return store.list({ take: 1 });
    });
    const answer = callControl(dir, request);
    await running;
    control.close();
    await store.close();
    stopped();
    const e = await expectCode(answer, 'EDBX_ERR_COMMAND_INTERRUPTED');
    expect(e.message).toMatch(
      new RegExp(`^the server \\(PID ${process.pid}\\) stopped before .*: nothing was changed; run it again`),
    );
  });

  it('is still answered with its own error while the server runs', async () => {
    const dir = await tempDir();
    const store = await EventStore.open({ engine: new MemoryEngine() });
    await store.close();
    servers.push(await serveControl(dir, async () => store.list({ take: 1 })));
    await expectCode(callControl(dir, request), 'EDBX_ERR_STORE_NOT_OPEN');
  });
});

describe('the server log of control commands', () => {
  it('logs a server error at error level (an internal one with its stack), and a user error not at all', async () => {
    const dir = await tempDir();
    const log = collectingLog();
    const { logged } = log;
    let failure: unknown = new TypeError('boom');
    servers.push(
      await serveControl(
        dir,
        async () => {
          throw failure;
        },
        undefined,
        log,
      ),
    );
    await expectCode(callControl(dir, request), 'EDBX_ERR_INTERNAL');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: 'error',
      fields: { code: 'EDBX_ERR_INTERNAL', status: 500, channel: 'control', op: 'aggregate.restore' },
    });
    expect((logged[0]!.fields.err as Error).stack).toMatch(/TypeError: boom/);
    logged.length = 0;
    failure = err('EDBX_ERR_AGGREGATE_NOT_FOUND', { type: 'patient', id: 'p-1' });
    await expectCode(callControl(dir, request), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    expect(logged).toEqual([]);
  });
  it('at debug level, writes an access line per command: op, who, outcome, time — never its arguments', async () => {
    const dir = await tempDir();
    const log = collectingLog('debug');
    let answer: () => Promise<unknown> = async () => ({ done: true });
    servers.push(await serveControl(dir, () => answer(), undefined, log));
    const secret = { ...request, args: { field: ['ssn=123-45-6789'] } };
    await callControl(dir, secret);
    answer = async () => {
      throw err('EDBX_ERR_AGGREGATE_NOT_FOUND', { type: 'patient', id: 'p-1' });
    };
    await expectCode(callControl(dir, secret), 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    answer = async () =>
      new StreamedAnswer(
        (async function* () {
          yield [1, 2];
          yield [3];
        })(),
      );
    await callControl(dir, { ...secret, stream: true }, undefined, {}, async () => undefined);
    const access = log.logged.filter((l) => l.message === 'command');
    const who = { channel: 'control', op: 'aggregate.restore', issued_by: { group: 'local', user: 'ana' } };
    expect(access).toEqual([
      { level: 'debug', message: 'command', fields: { ...who, duration_ms: expect.any(Number) } },
      {
        level: 'debug',
        message: 'command',
        fields: { ...who, code: 'EDBX_ERR_AGGREGATE_NOT_FOUND', duration_ms: expect.any(Number) },
      },
      { level: 'debug', message: 'command', fields: { ...who, items: 3, duration_ms: expect.any(Number) } },
    ]);
    expect(JSON.stringify(log.logged)).not.toContain('123-45-6789');
    // At info level (the default), none.
    const quiet = collectingLog('info');
    const other = await tempDir();
    servers.push(await serveControl(other, async () => 'ran', undefined, quiet));
    await callControl(other, request);
    expect(quiet.logged).toEqual([]);
  });
});

describe('repeated server errors of control commands', () => {
  const failing = async (dir: string, log: ReturnType<typeof collectingLog>, stop?: AbortSignal) => {
    const control = await serveControl(
      dir,
      async () => {
        throw err('EDBX_ERR_STORE_IO', { reason: 'No space left on device' });
      },
      stop,
      log,
      300,
    );
    servers.push(control);
    return control;
  };
  const occurrences = (logged: readonly Logged[]) =>
    logged.reduce((n, l) => n + 1 + ((l.fields.repeated as number | undefined) ?? 0), 0);

  it('are collapsed like those of HTTP requests, and the count left out is logged once the interval passed', async () => {
    const dir = await tempDir();
    const log = collectingLog();
    await failing(dir, log);
    for (let i = 0; i < 5; i++) await expectCode(callControl(dir, request), 'EDBX_ERR_STORE_IO');
    expect(log.logged).toEqual([
      expect.objectContaining({
        level: 'error',
        fields: expect.not.objectContaining({ repeated: expect.anything() }),
      }),
    ]);
    for (const until = Date.now() + 5_000; log.logged.length < 2; await new Promise((r) => setTimeout(r, 20)))
      if (Date.now() > until) throw new Error('the count left out was never logged');
    expect(log.logged[1]).toMatchObject({
      level: 'error',
      fields: {
        code: 'EDBX_ERR_STORE_IO',
        status: 500,
        channel: 'control',
        op: 'aggregate.restore',
        repeated: 3,
      },
    });
    expect(occurrences(log.logged)).toBe(5);
  });

  it('a stopping server logs the count left out at once', async () => {
    const dir = await tempDir();
    const log = collectingLog();
    const stop = new AbortController();
    await failing(dir, log, stop.signal);
    for (let i = 0; i < 3; i++) await expectCode(callControl(dir, request), 'EDBX_ERR_STORE_IO');
    expect(log.logged).toHaveLength(1);
    stop.abort(err('EDBX_ERR_SHUTTING_DOWN'));
    expect(log.logged).toHaveLength(2);
    expect(log.logged[1]).toMatchObject({ fields: { code: 'EDBX_ERR_STORE_IO', repeated: 1 } });
    expect(occurrences(log.logged)).toBe(3);
  });
});

describe('a command sent to a server that does not acknowledge it in time (chaos QA #3)', () => {
  it('never runs, even when the server resumes and reads it, and the CLI is told so', async () => {
    const dir = await tempDir();
    let ran = 0;
    let resume!: () => void;
    const resumed = new Promise<void>((r) => (resume = r));
    // A server that accepts the connection but reads nothing until it "resumes" (as a SIGSTOPped one).
    const control = await serveControl(dir, async () => {
      ran++;
      return { ok: 1 };
    });
    servers.push(control);
    const accepted: net.Socket[] = [];
    control.prependListener('connection', (socket: net.Socket) => {
      socket.pause();
      accepted.push(socket);
      void resumed.then(() => socket.resume());
    });
    const e = await expectCode(
      callControl(dir, request, undefined, { handshakeMs: 200 }),
      'EDBX_ERR_SERVER_NOT_ANSWERING',
    );
    expect(e.message).toMatch(/does not answer \(nothing within 0\.2 s\): the command was not run;/);
    resume();
    // The server reads the request and the close behind it: the command is dropped.
    await new Promise((r) => setTimeout(r, 300));
    expect(accepted).toHaveLength(1);
    expect(ran).toBe(0);
    // A client that waits runs its command as before.
    expect(await callControl(dir, request)).toEqual({ result: { ok: 1 } });
    expect(ran).toBe(1);
  });

  it('is reported with an unknown outcome when the server goes silent after confirming', async () => {
    const dir = await tempDir();
    // A server that acknowledges, is confirmed, then says nothing more.
    const server = net.createServer((socket) => {
      socket.once('data', () => socket.write('{"ack":true}\n'));
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(socketPath(dir), r));
    const e = await expectCode(
      callControl(dir, request, undefined, { idleMs: 200 }),
      'EDBX_ERR_SERVER_NOT_ANSWERING',
    );
    expect(e.message).toMatch(
      /stopped answering .* while it ran the command: whether it took effect is unknown/,
    );
  });
});

describe('a control request that is not JSON (qa-aud #3)', () => {
  it('is refused as such, and neither the log nor the answer quotes it', async () => {
    const dir = await tempDir();
    const logged: unknown[] = [];
    const log = { info: (...a: unknown[]) => logged.push(a), error: (...a: unknown[]) => logged.push(a) };
    servers.push(await serveControl(dir, async () => 'ran', undefined, log));
    // Short: JSON.parse's own message quotes ten characters or so around where it stopped.
    const secret = 'PHI-42';
    const lines = await new Promise<string[]>((resolve, reject) => {
      const socket = net.connect(socketPath(dir));
      let got = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (got += d));
      socket.on('error', reject);
      socket.on('end', () => resolve(got.trim().split('\n')));
      // The request, then the confirmation the server waits for before it runs a command.
      socket.write(`{"op":"aggregate.apply","args":{"payload":{"x":${secret}}}}\n{"go":true}\n`);
    });
    const answer = JSON.parse(lines.at(-1)!) as { ok: boolean; code: string; params: unknown };
    expect(answer).toMatchObject({ ok: false, code: 'EDBX_ERR_INVALID_JSON' });
    expect(lines.join('\n')).not.toContain(secret);
    expect(JSON.stringify(logged)).not.toContain(secret);
  });
});

describe('a listing sent a page at a time (scale test: 1M aggregates took ~1 GB per side)', () => {
  const listRequest = { ...request, op: 'aggregate.list', stream: true };
  async function listing(
    pages: () => AsyncIterable<readonly unknown[]>,
    log?: ReturnType<typeof collectingLog>,
  ) {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'eventdbx.pid'), JSON.stringify({ pid: 4242 }));
    servers.push(await serveControl(dir, async () => new StreamedAnswer(pages()), undefined, log));
    return dir;
  }

  it('hands over the first page while the store is still being read', async () => {
    const engine = new GatedEngine();
    const store = await EventStore.open({ engine });
    const reqs = Array.from({ length: 250 }, (_, i) => ({
      aggregate_type: 'customer',
      aggregate_id: `c-${String(i).padStart(3, '0')}`,
      event_type: 'created',
      payload: {},
    }));
    await store.appendMany(reqs, { issuedBy: request.identity });
    const held = engine.holdAfter(150);
    const dir = await listing(() => aggregatePages(store, {}, 100));
    const pages: unknown[][] = [];
    let first!: () => void;
    const gotFirst = new Promise<void>((r) => (first = r));
    const answer = callControl(dir, listRequest, undefined, {}, (items) => {
      pages.push(items);
      first();
    });
    // The scan is held in the second page: the first one is already with the client.
    await Promise.all([held, gotFirst]);
    expect(pages.map((p) => p.length)).toEqual([100]);
    engine.release();
    expect(await answer).toEqual({ result: null });
    expect(pages.map((p) => p.length)).toEqual([100, 100, 50]);
    await store.close();
  });

  it('sends the token and schema lists a page at a time, --skip and --take across pages', async () => {
    const store = await EventStore.open({ engine: new MemoryEngine() });
    const by = { issuedBy: request.identity };
    for (let i = 0; i < 25; i++) {
      await createToken(store, { group: 'nurses', user: `n-${i}` }, by);
      await createSchema(store, { aggregate: `t-${String(i).padStart(2, '0')}`, events: ['a'] }, by);
    }
    const lists = [
      { whole: await listTokens(store), pages: (o: object) => tokenPages(store, o, 10) },
      { whole: await listSchemas(store), pages: (o: object) => schemaPages(store, o, 10) },
    ];
    for (const { whole, pages } of lists) {
      const dir = await listing(() => pages({}));
      const got: unknown[][] = [];
      const answer = await callControl(dir, listRequest, undefined, {}, (items) => void got.push(items));
      expect(answer).toEqual({ result: null });
      expect(got.map((p) => p.length)).toEqual([10, 10, 5]);
      expect(got.flat()).toEqual(whole);
      const window: unknown[] = [];
      for await (const page of pages({ skip: 7, take: 12 })) window.push(...page);
      expect(window).toEqual(whole.slice(7, 19));
    }
    await store.close();
  });

  it('fails a token list cut off by the store closing with its code, after the pages before it', async () => {
    const store = await EventStore.open({ engine: new MemoryEngine() });
    for (let i = 0; i < 25; i++)
      await createToken(store, { group: 'nurses', user: `n-${i}` }, { issuedBy: request.identity });
    const whole = await listTokens(store);
    // The server stops between two pages: the next read meets the closed store.
    const dir = await listing(async function* () {
      for await (const page of tokenPages(store, {}, 10)) {
        yield page;
        await store.close();
      }
    });
    const got: unknown[] = [];
    await expectCode(
      callControl(dir, listRequest, undefined, {}, (items) => void got.push(...items)),
      'EDBX_ERR_STORE_NOT_OPEN',
    );
    expect(got).toEqual(whole.slice(0, 10));
  });

  it('waits for a client slower than the idle limit to take each page', async () => {
    const dir = await listing(async function* () {
      for (let i = 0; i < 3; i++) yield [i];
    });
    const got: unknown[] = [];
    // Each page takes the client 300 ms to print (a full pipe): the server is not taken for silent.
    const answer = await callControl(dir, listRequest, undefined, { idleMs: 100 }, async (items) => {
      got.push(...items);
      await new Promise((r) => setTimeout(r, 300));
    });
    expect({ answer, got }).toEqual({ answer: { result: null }, got: [0, 1, 2] });
  });

  it('fails with the error met mid-listing, after the pages before it, and the server logs it', async () => {
    const log = collectingLog();
    const dir = await listing(async function* () {
      yield [1, 2];
      throw new TypeError('boom');
    }, log);
    const got: unknown[] = [];
    await expectCode(
      callControl(dir, listRequest, undefined, {}, (items) => void got.push(...items)),
      'EDBX_ERR_INTERNAL',
    );
    expect(got).toEqual([1, 2]);
    expect(log.logged.map((l) => l.fields.code)).toEqual(['EDBX_ERR_INTERNAL']);
  });

  it.each([
    ['ends the connection after some pages', '{"items":[1]}\n', true],
    ['counts more items than it sent', '{"items":[1]}\n{"ok":true,"result":null,"items":2}\n', false],
  ])('is interrupted, never taken as complete, when the server %s', async (_, lines, end) => {
    const dir = await dyingServer((socket) => {
      socket.once('data', () => (end ? socket.end(lines) : socket.write(lines)));
    });
    const e = await expectCode(
      callControl(dir, listRequest, undefined, {}, () => undefined),
      'EDBX_ERR_COMMAND_INTERRUPTED',
    );
    expect(e.message).toMatch(/^the server \(PID 4242\) went away before the command finished/);
  });

  it('stops reading the store when the client goes away mid-listing', async () => {
    const log = collectingLog();
    let read = 0;
    const dir = await listing(async function* () {
      for (;;) {
        read++;
        yield ['x'.repeat(64 * 1024)];
      }
    }, log);
    const gone = new Error('reader gone');
    const e = await callControl(dir, listRequest, undefined, {}, () => {
      throw gone;
    }).catch((x: unknown) => x);
    expect(e).toBe(gone);
    const deadline = Date.now() + 5_000;
    while (log.logged.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(log.logged.map((l) => l.fields.code)).toEqual(['EDBX_ERR_CANCELLED']);
    // A few pages were in flight (socket buffers), not the endless rest.
    expect(read).toBeLessThan(100);
  });
});
