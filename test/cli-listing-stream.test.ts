/**
 * `aggregate list` and `aggregate replay` are printed a page at a time, end to end with the real CLI
 * and server on RocksDB (scale test, 1M aggregates: the whole answer took about 1 GB on each side of
 * the control socket, and nothing was printed until the end). Listings longer than one page print the
 * same bytes and exit code through a running server as on the store opened directly; one cut off by a
 * damaged aggregate prints the pages before it, then the error line, and exits 1 with its --json
 * output unfinished, never a shorter document that parses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { createEngine } from '../src/storage/index.js';
import * as K from '../src/store/keys.js';
import { AGGREGATE_PAGE, EVENT_PAGE } from '../src/store/pages.js';
import { openDataDir } from '../src/store/secure.js';
import { type Project, project, startServer } from './helpers/cli.js';

const AGGREGATES = 2 * AGGREGATE_PAGE + 500;
const EVENTS = 2 * EVENT_PAGE + 44;
const ctx = { issuedBy: { group: 'local', user: 'seed' } };
const id = (i: number) => `p-${String(i).padStart(5, '0')}`;

/** Aggregates and one long history written straight into the data dir (no server runs). */
async function seed(p: Project): Promise<void> {
  const secure = await openDataDir(await loadConfig(p.configPath, p.env));
  try {
    for (let i = 0; i < AGGREGATES; i += 500) {
      const reqs = Array.from({ length: Math.min(500, AGGREGATES - i) }, (_, j) => ({
        aggregate_type: 'patient',
        // One id past the first page much longer than the rest: a wider cell than the table measured.
        aggregate_id: i + j === AGGREGATE_PAGE + 7 ? `${id(i + j)}-${'x'.repeat(40)}` : id(i + j),
        event_type: 'patient-added',
        payload: { n: String(i + j) },
      }));
      await secure.store.appendMany(reqs, ctx);
    }
    for (let v = 0; v < EVENTS; v += 100) {
      const reqs = Array.from({ length: Math.min(100, EVENTS - v) }, (_, j) => ({
        aggregate_type: 'order',
        aggregate_id: 'o-1',
        event_type: 'line-added',
        payload: { line: String(v + j) },
      }));
      await secure.store.appendMany(reqs, ctx);
    }
  } finally {
    await secure.store.close();
  }
}

const REPLAY = ['aggregate', 'replay', '--aggregate', 'order', '--aggregate-id', 'o-1'];
const COMMANDS: string[][] = [
  ['aggregate', 'list'],
  ['aggregate', 'list', '--json'],
  ['aggregate', 'list', '--skip', '700', '--take', '1500'],
  ['aggregate', 'list', '--type', 'patient', '--take', String(AGGREGATE_PAGE), '--json'],
  REPLAY,
  [...REPLAY, '--json'],
  [...REPLAY, '--skip', '100', '--take', '200', '--json'],
];

describe('a listing longer than one page', () => {
  let p: Project;
  const direct: Array<{ code: number; stdout: string; stderr: string }> = [];

  beforeAll(async () => {
    p = await project();
    await seed(p);
    for (const args of COMMANDS) direct.push(await p.cli(args));
  }, 120_000);
  afterAll(async () => p?.cleanup());

  it('is printed whole without a server, as one --json document', () => {
    for (const r of direct) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const list = JSON.parse(direct[1]!.stdout) as { aggregates: Array<{ aggregate_id: string }> };
    expect(list.aggregates).toHaveLength(AGGREGATES + 1);
    const events = JSON.parse(direct[5]!.stdout) as { events: Array<{ version: number }> };
    expect(events.events.map((e) => e.version)).toEqual(Array.from({ length: EVENTS }, (_, i) => i + 1));
    expect(direct[1]!.stdout).toBe(`${JSON.stringify(list, null, 2)}\n`);
    const page = JSON.parse(direct[6]!.stdout) as { events: Array<{ version: number }> };
    expect(page.events.map((e) => e.version)).toEqual(Array.from({ length: 200 }, (_, i) => i + 101));
    // The human table: one header, one line per aggregate; the wide id pushes only its own row.
    const lines = direct[0]!.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(AGGREGATES + 2);
    expect(lines.filter((l) => l.includes('x'.repeat(40)))).toHaveLength(1);
    const statusAt = lines[0]!.indexOf('STATUS');
    expect(lines.slice(1).filter((l) => l.indexOf('live') !== statusAt)).toHaveLength(1);
  });

  it('prints the same bytes and exit codes through a running server', async () => {
    const server = await startServer(p);
    try {
      for (const [i, args] of COMMANDS.entries())
        expect(await p.cli(args), args.join(' ')).toEqual(direct[i]);
    } finally {
      await server.stop();
    }
  }, 120_000);

  it('cut off by a damaged aggregate: the pages before it, one error line, exit 1, no complete JSON', async () => {
    // The meta of an aggregate on the second page says version 1, but an event 2 is stored: listing
    // it is refused as damage (store.ts #checkListed).
    const engine = createEngine('rocksdb', p.dataDir);
    await engine.open();
    await engine.write(
      [{ type: 'put', space: 'main', key: K.eventKey('patient', id(1500), 2), value: Buffer.from('x') }],
      {
        sync: true,
      },
    );
    await engine.close();
    const check = (r: { code: number; stdout: string; stderr: string }, json: boolean) => {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: .*patient\/p-01500.* \[EDBX_ERR_INTEGRITY\]\n$/);
      // The first page was printed as it came; the damaged one and those after it were not.
      expect(r.stdout).toContain(id(900));
      expect(r.stdout).not.toContain(id(1500));
      if (json) expect(() => JSON.parse(r.stdout)).toThrow();
    };
    const without = [await p.cli(['aggregate', 'list']), await p.cli(['aggregate', 'list', '--json'])];
    check(without[0]!, false);
    check(without[1]!, true);
    const server = await startServer(p);
    try {
      expect(await p.cli(['aggregate', 'list'])).toEqual(without[0]);
      expect(await p.cli(['aggregate', 'list', '--json'])).toEqual(without[1]);
    } finally {
      await server.stop();
    }
  }, 120_000);
});
