/**
 * Deeply nested JSON (pen #6): a body or control request nested thousands of levels deep made a
 * recursive walk overflow the stack, answered 500 EDBX_ERR_INTERNAL with a RangeError in the server's
 * log. Over MAX_JSON_DEPTH (64) levels it is a coded 400 before anything walks it, on every entry.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { err } from '../../src/core/errors.js';
import { MAX_JSON_DEPTH, jsonShape } from '../../src/core/json-nesting.js';
import { serveControl, socketPath } from '../../src/server/control.js';
import { schemaFeature } from '../../src/server/routes/schemas.js';
import { type TestServer, post, testServer } from '../helpers/http.js';
import { collectingLog } from '../helpers/log.js';
import { tempDirs } from '../helpers/temp.js';

/** `depth` arrays, one inside the other. */
const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

describe('jsonShape', () => {
  it('counts members and nesting outside strings only', () => {
    expect(jsonShape('{"a":[1,{"b":2}]}')).toEqual({ members: 2, depth: 3 });
    expect(jsonShape('{"a:[{":"]\\"[{"}')).toEqual({ members: 1, depth: 1 });
    expect(jsonShape('"x"')).toEqual({ members: 0, depth: 0 });
  });
});

describe('a deeply nested request body (pen #6)', () => {
  let s: TestServer;
  beforeAll(async () => {
    // With the schema routes: an unknown path is answered 404 before its body is read.
    s = await testServer({
      logs: true,
      extraRoutes: [(app, ctx) => schemaFeature.routes!(app, ctx, undefined as never)],
    });
  });
  afterAll(() => s?.close());

  it('is 400 EDBX_ERR_INVALID_JSON naming the depth and the limit, never a 500, on every route', async () => {
    const bodies: Array<[string, string]> = [
      ['/v1/aggregates/patient/p-1/events', `{"event_type":"added","payload":{"a":${nested(5000)}}}`],
      // Numbers in the payload and a repeated key: the bodies that are parsed a second time.
      ['/v1/aggregates/patient/p-1/events', `{"event_type":"added","payload":{"n":1,"a":${nested(20000)}}}`],
      ['/v1/aggregates/patient/p-1/events', `{"event_type":"a","event_type":"a","x":${nested(5000)}}`],
      ['/v1/transactions', nested(5000)],
      ['/v1/schemas', `{"aggregate":"patient","events":${nested(5000)}}`],
    ];
    for (const [route, body] of bodies) {
      const r = await post(s, route, body);
      expect(r.status, route).toBe(400);
      expect(r.body.code).toBe('EDBX_ERR_INVALID_JSON');
      expect(r.body.detail).toMatch(/nests arrays and objects \d{4,5} levels deep, over the limit of 64/);
    }
    // Nothing for the server-errors alert: no error-level line, no stack.
    expect(s.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it(`takes ${MAX_JSON_DEPTH} levels to the route's own checks, and refuses ${MAX_JSON_DEPTH + 1}`, async () => {
    // The body and the payload are two levels: the value adds the rest.
    const body = (depth: number) => `{"event_type":"added","payload":{"a":${nested(depth - 2)}}}`;
    const within = await post(s, '/v1/aggregates/patient/p-2/events', body(MAX_JSON_DEPTH));
    expect(within.body.code).toBe('EDBX_ERR_INVALID_FIELD_VALUE');
    const over = await post(s, '/v1/aggregates/patient/p-2/events', body(MAX_JSON_DEPTH + 1));
    expect(over.body.code).toBe('EDBX_ERR_INVALID_JSON');
    expect(over.body.detail).toContain(`${MAX_JSON_DEPTH + 1} levels deep`);
  });
});

describe('a deeply nested control request (pen #6)', () => {
  let dir: string;
  let server: net.Server;
  let ran = 0;
  const log = collectingLog();
  const tempDir = tempDirs('edbx-ctl-depth-', { until: 'all' });
  beforeAll(async () => {
    dir = await tempDir();
    // As an operation does with a bad argument (`--skip`): a message that quotes the value.
    server = await serveControl(
      dir,
      async (req) => {
        ran++;
        throw err('EDBX_ERR_INVALID_ARGUMENT', {
          name: '--skip',
          value: req.args.skip,
          reason: 'use a whole number >= 0',
        });
      },
      undefined,
      log,
    );
  });
  afterAll(() => {
    server?.close();
  });

  /** Send one request line as the CLI does (line, acknowledgement, confirmation) and read the answer. */
  const send = (line: string): Promise<{ ok: boolean; code?: string; params?: Record<string, unknown> }> =>
    new Promise((resolve, reject) => {
      const socket = net.connect(socketPath(dir));
      let data = '';
      socket.setEncoding('utf8');
      socket.on('error', reject);
      socket.on('data', (chunk: string) => {
        if (data === '' && chunk.startsWith('{"ack":true}\n')) socket.write('{"go":true}\n');
        data += chunk;
      });
      socket.on('close', () => {
        const last = data.trim().split('\n').at(-1) ?? '';
        try {
          resolve(JSON.parse(last) as { ok: boolean; code?: string });
        } catch {
          reject(new Error(`no answer line: ${JSON.stringify(data.slice(0, 200))}`));
        }
      });
      socket.write(`${line}\n`);
    });

  it('is refused with EDBX_ERR_INVALID_JSON before the operation runs, and logs no server error', async () => {
    const answer = await send(
      `{"op":"aggregate.list","args":{"skip":${nested(5000)}},"identity":{"group":"local","user":"ana"}}`,
    );
    expect(answer).toMatchObject({ ok: false, code: 'EDBX_ERR_INVALID_JSON' });
    expect(String(answer.params?.reason)).toMatch(
      /control request nests arrays and objects 5002 levels deep/,
    );
    expect(ran).toBe(0);
    expect(log.logged).toEqual([]);
  });
});
