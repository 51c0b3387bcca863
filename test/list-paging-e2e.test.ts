/**
 * The token and schema listings of more than a page, end to end: the SDK pages them and iterates
 * every page, and the real CLI (`token list`, `schema list`) still prints them whole, read a page at a
 * time through the server's control socket or from the store it opens itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventDbxClient, isApiError } from '../src/client/index.js';
import { loadConfig } from '../src/config/config.js';
import { proofOfKeys } from '../src/cli/runtime.js';
import { callControl } from '../src/server/control.js';
import { type Project, type RunningServer, project, startServer } from './helpers/cli.js';

/** More than one CLI page (1000) of each. */
const TOKENS = 1050;
const SCHEMAS = 1010;
const name = (i: number) => `t-${String(i).padStart(4, '0')}`;

let p: Project;
let server: RunningServer | undefined;
let admin: EventDbxClient;
let ids: string[];
let reader: EventDbxClient;

async function inBatches(n: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  for (let from = 0; from < n; from += 50)
    await Promise.all(Array.from({ length: Math.min(50, n - from) }, (_, i) => fn(from + i)));
}

const json = async (args: string[]) => {
  const r = await p.cli([...args, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return { text: r.stdout, body: JSON.parse(r.stdout) };
};

beforeAll(async () => {
  p = await project();
  server = await startServer(p, ['--restrict=false']);
  admin = new EventDbxClient({ url: server.url, token: server.adminToken });
  await inBatches(TOKENS, (i) => admin.createToken({ group: 'nurses', user: `n-${i}`, expiration: 3600 }));
  await inBatches(SCHEMAS, (i) => admin.createSchema({ aggregate: name(i), events: ['added'] }));
  const issued = await admin.createToken({
    group: 'auditors',
    user: 'carl',
    read_only: true,
    expiration: 3600,
  });
  reader = new EventDbxClient({ url: server.url, token: issued.token });
  ids = [];
  for await (const t of admin.tokens({ pageSize: 1000 })) ids.push(t.id);
}, 300_000);
afterAll(async () => {
  await server?.stop();
  await p?.cleanup();
});

describe('SDK', () => {
  it('listTokens pages with take, skip and cursor; tokens() follows every page', async () => {
    expect(ids).toHaveLength(TOKENS + 2);
    expect(new Set(ids).size).toBe(ids.length);
    const first = await admin.listTokens({ take: 3 });
    expect(first.tokens.map((t) => t.id)).toEqual(ids.slice(0, 3));
    const next = await admin.listTokens({ take: 3, cursor: first.next_cursor! });
    expect(next.tokens.map((t) => t.id)).toEqual(ids.slice(3, 6));
    expect((await admin.listTokens({ skip: 10, take: 2 })).tokens.map((t) => t.id)).toEqual(
      ids.slice(10, 12),
    );
    const byDefault = await admin.listTokens();
    expect(byDefault.tokens).toHaveLength(100);
    expect(byDefault.next_cursor).toEqual(expect.any(String));
    const small: string[] = [];
    for await (const t of admin.tokens({ pageSize: 400 })) small.push(t.id);
    expect(small).toEqual(ids);
  });

  it('listSchemas pages; schemas() follows every page, for any valid token', async () => {
    const all: string[] = [];
    for await (const s of reader.schemas({ pageSize: 300 })) all.push(s.aggregate);
    expect(all).toEqual(Array.from({ length: SCHEMAS }, (_, i) => name(i)));
    const page = await reader.listSchemas({ skip: 5, take: 2 });
    expect(page.schemas.map((s) => s.aggregate)).toEqual([name(5), name(6)]);
    const after = await reader.listSchemas({ take: 2, cursor: page.next_cursor! });
    expect(after.schemas.map((s) => s.aggregate)).toEqual([name(7), name(8)]);
  });

  it('a bad take or cursor is the server’s coded 400; tokens stay for group admin', async () => {
    for (const call of [
      admin.listTokens({ take: 1001 }),
      admin.listSchemas({ take: 0 }),
      admin.listSchemas({ cursor: 'nope' }),
      admin.listTokens({ cursor: 'nope' }),
    ])
      await expect(call).rejects.toSatisfy(
        (e: unknown) => isApiError(e, 'EDBX_ERR_INVALID_ARGUMENT') && e.status === 400,
      );
    await expect(reader.tokens().next()).rejects.toSatisfy((e: unknown) =>
      isApiError(e, 'EDBX_ERR_GROUP_NOT_ALLOWED'),
    );
  });
});

describe('CLI (more than one page of 1000)', () => {
  /** Both listings, JSON and human, as the CLI prints them now (on a server, or on its own store). */
  async function listings() {
    const tokens = await json(['token', 'list']);
    const schemas = await json(['schema', 'list']);
    const human = await p.cli(['token', 'list']);
    expect(human.code).toBe(0);
    return { tokens, schemas, human: human.stdout };
  }

  function check(l: Awaited<ReturnType<typeof listings>>) {
    expect(l.tokens.body.tokens.map((t: { id: string }) => t.id)).toEqual(ids);
    // Written a page at a time, the text is exactly what printing the whole result writes.
    expect(l.tokens.text).toBe(`${JSON.stringify(l.tokens.body, null, 2)}\n`);
    expect(l.schemas.body.schemas.map((s: { aggregate: string }) => s.aggregate)).toEqual(
      Array.from({ length: SCHEMAS }, (_, i) => name(i)),
    );
    expect(l.schemas.text).toBe(`${JSON.stringify(l.schemas.body, null, 2)}\n`);
    const lines = l.human.trimEnd().split('\n');
    expect(lines.filter((line) => line.startsWith('ID '))).toHaveLength(1);
    expect(lines).toHaveLength(ids.length + 1);
    expect(lines.slice(1).map((line) => line.split(/\s+/)[0])).toEqual(ids);
  }

  it('prints every token and schema through the running server', async () => {
    check(await listings());
  });

  it('gets them from the server a page at a time, as aggregate list, the last line counting them', async () => {
    const config = await loadConfig(p.configPath, p.env);
    const identity = { group: 'local', user: 'tester' };
    for (const [op, pages] of [
      ['token.list', [1000, TOKENS + 2 - 1000]],
      ['schema.list', [1000, SCHEMAS - 1000]],
    ] as const) {
      const got: number[] = [];
      const request = { op, args: {}, identity, proof: await proofOfKeys(config), stream: true };
      const answer = await callControl(config.dataDir, request, undefined, {}, (items) => {
        got.push(items.length);
      });
      expect({ op, answer, got }).toEqual({ op, answer: { result: null }, got: pages });
    }
  });

  it('takes --skip and --take across pages, and refuses a bad one with its flag named', async () => {
    const window = await json(['token', 'list', '--skip', '990', '--take', '20']);
    expect(window.body.tokens.map((t: { id: string }) => t.id)).toEqual(ids.slice(990, 1010));
    const many = await json(['schema', 'list', '--take', '1005']);
    expect(many.body.schemas).toHaveLength(1005);
    expect((await json(['schema', 'list', '--take', '0'])).text).toBe('{\n  "schemas": []\n}\n');
    const bad = await p.cli(['token', 'list', '--take', 'ten']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--take.*EDBX_ERR_INVALID_ARGUMENT/);
  });

  it('prints the same from the store it opens itself when no server runs', async () => {
    await server!.stop();
    server = undefined;
    check(await listings());
  });
});
