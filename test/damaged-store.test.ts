/**
 * A store with a damaged table (DR QA finding 3: 32 bytes overwritten in the middle of an SST): it
 * opens, and most of it reads. Store-wide verification reports each aggregate it could not read and
 * verifies the rest (it stopped at the first unreadable block, naming nothing); the CLI exits 1 with
 * them listed. A server starts on it (RocksDB checks a table's blocks only when they are read), and
 * the first read that meets the damage answers EDBX_ERR_STORE_DAMAGED, is logged once at error level
 * and turns /health to `degraded` (200: it still serves, writes included), which `status` reports.
 */
import { cp, open, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RocksDbEngine } from '../src/storage/index.js';
import * as K from '../src/store/keys.js';
import { openDataDir } from '../src/store/secure.js';
import { verifyAll } from '../src/store/verify.js';
import { type Project, freePort, project } from './helpers/cli.js';

let p: Project;
/** The aggregates whose events the damaged block holds (found by reading each, as RocksDB sees it). */
let broken: string[];
const ids = Array.from({ length: 40 }, (_, i) => `a-${i}`);
const open_ = (dataDir: string, verifyThreads = 0) =>
  openDataDir({
    dataDir,
    masterKey: 'test-master',
    dek: 'test-dek',
    memoryThreshold: 100,
    maxPayloadBytes: 256 * 1024,
    verifyThreads,
  });

beforeAll(async () => {
  p = await project();
  const secure = await open_(p.dataDir);
  for (const id of ids)
    await secure.store.appendMany(
      Array.from({ length: 100 }, (_, i) => ({
        aggregate_type: 'acct',
        aggregate_id: id,
        event_type: 'posted',
        payload: { n: String(i).repeat(50) },
      })),
      { issuedBy: { group: 'admin', user: 'jane' } },
    );
  await secure.store.close();
  // Opened again: the write-ahead log is flushed into one table, as in the QA's store.
  await (await open_(p.dataDir)).store.close();
  const table = (await readdir(p.dataDir)).find((f) => f.endsWith('.sst'))!;
  const fh = await open(path.join(p.dataDir, table), 'r+');
  try {
    // About a third in: the events (the first keys of the table, after the audit log's).
    await fh.write(Buffer.alloc(32, 'X'), 0, 32, Math.floor((await fh.stat()).size * 0.3));
  } finally {
    await fh.close();
  }
  const engine = new RocksDbEngine(p.dataDir);
  await engine.open();
  broken = [];
  try {
    for (const id of ids) {
      const prefix = K.eventPrefix('acct', id);
      try {
        for await (const _ of engine.keyChunks('main', {
          gte: prefix,
          lt: K.eventPrefix('acct', `${id}\u0001`),
        }));
        await engine.getMany('main', [K.metaKey('acct', id)]);
        for await (const _ of engine.valueChunks('main', {
          gte: prefix,
          lt: K.eventPrefix('acct', `${id}\u0001`),
        }));
      } catch {
        broken.push(`acct/${id}`);
      }
    }
  } finally {
    await engine.close();
  }
  expect(broken.length).toBeGreaterThan(0);
  expect(broken.length).toBeLessThan(ids.length);
}, 120_000);

afterAll(async () => {
  await p.cli(['stop']);
  await p.cleanup();
});

const unread =
  /^could not be read: data dir .* is damaged: RocksDB reports Corruption: block checksum mismatch: .*\.sst offset \d+ size \d+; restore a backup/;

describe('a store with a damaged table (DR #3)', () => {
  it('verifies every aggregate it can read and names each it cannot, with and without worker threads', async () => {
    for (const threads of [0, 2]) {
      const copy = `${p.dataDir}-copy-${threads}`;
      await cp(p.dataDir, copy, { recursive: true });
      const secure = await open_(copy, threads);
      try {
        const report = await verifyAll(secure.store);
        expect(report.ok).toBe(false);
        expect(report.aggregates).toBe(ids.length);
        expect(report.failures.map((f) => `${f.aggregate_type}/${f.aggregate_id}`)).toEqual(broken);
        for (const f of report.failures) expect(f.reason).toMatch(unread);
        expect(report.ledger.ok).toBe(true);
        expect(secure.store.engine.damage?.code).toBe('EDBX_ERR_STORE_DAMAGED');
      } finally {
        await secure.store.close();
      }
    }
  }, 120_000);

  it('`aggregate verify` lists them and exits 1', async () => {
    const r = await p.cli(['aggregate', 'verify']);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('FAIL'))).toHaveLength(broken.length);
    for (const b of broken)
      expect(r.stdout).toContain(`FAIL ${b}: could not be read: data dir ${p.dataDir} is damaged`);
    expect(lines).toContain(
      `verification failed: ${ids.length} aggregates, ${ids.length * 100} events, ${broken.length} failed`,
    );
  }, 60_000);

  it('a server on it turns /health degraded at the first read that meets the damage, and says so once', async () => {
    const port = await freePort();
    const start = await p.cli(['start', '--port', String(port)]);
    expect(start.code, start.stderr).toBe(0);
    const url = `http://127.0.0.1:${port}`;
    const health = async () => {
      const res = await fetch(`${url}/health`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await health()).body.status).toBe('ok');
    const issued = await p.cli(['token', 'generate', '--group', 'admin', '--user', 'ops', '--json']);
    expect(issued.code, issued.stderr).toBe(0);
    const token = (JSON.parse(issued.stdout) as { token: { token: string } }).token.token;
    const [type, id] = broken[0]!.split('/') as [string, string];
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${url}/v1/aggregates/${type}/${id}/events`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(500);
      const problem = (await res.json()) as { code: string; detail: string };
      expect(problem.code).toBe('EDBX_ERR_STORE_DAMAGED');
      expect(problem.detail).not.toContain(p.dataDir);
    }
    const degraded = await health();
    expect(degraded.status).toBe(200);
    expect(degraded.body).toMatchObject({
      status: 'degraded',
      code: 'EDBX_ERR_STORE_DAMAGED',
      detail: expect.stringMatching(/^the server's data dir is damaged: restore a backup/),
    });
    // Writes go on: they do not read the damaged block.
    const write = await p.cli(['token', 'generate', '--group', 'g', '--user', 'u', '--json']);
    expect(write.code, write.stderr).toBe(0);

    const status = await p.cli(['status']);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/health +degraded/);
    expect(status.stderr).toMatch(
      new RegExp(
        `^error: the server's data dir is damaged: restore a backup.*; its log says: data dir ${p.dataDir} is damaged: RocksDB reports Corruption: .*\\[EDBX_ERR_STORE_DAMAGED\\]\\n$`,
      ),
    );
    // The same for scripts: the problem in `--json`, beside the health (exit 1 too).
    const statusJson = await p.cli(['status', '--json']);
    expect(statusJson.code).toBe(1);
    expect(JSON.parse(statusJson.stdout)).toMatchObject({
      health: 'degraded',
      problem: {
        code: 'EDBX_ERR_STORE_DAMAGED',
        detail: expect.stringMatching(/^the server's data dir is damaged: restore a backup/),
        logged: expect.stringMatching(
          new RegExp(`^data dir ${p.dataDir} is damaged: RocksDB reports Corruption: `),
        ),
      },
    });
    const told = (await readFile(path.join(p.dataDir, 'eventdbx.log'), 'utf8'))
      .split('\n')
      .filter(
        (l) => l.includes('"EDBX_ERR_STORE_DAMAGED"') && l.includes('"level":50') && !l.includes('"req'),
      )
      .map((l) => JSON.parse(l) as { msg: string });
    expect(told).toHaveLength(1);
    expect(told[0]!.msg).toMatch(
      new RegExp(`^data dir ${p.dataDir} is damaged: RocksDB reports Corruption: `),
    );
    expect((await p.cli(['stop'])).code).toBe(0);
  }, 60_000);
});
