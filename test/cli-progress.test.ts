/**
 * The progress of a long command when stderr is not a terminal (QA scale finding 3: a whole-store
 * `aggregate verify` under cron or `| tee` printed nothing for minutes): a plain line now and then,
 * never on stdout. The lines' timing with fake timers; end to end (the real CLI, stderr a pipe, with
 * and without a running server) through `EVENTDBX_PROGRESS_INTERVAL_MS=0`, a line at every update.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { progressLines } from '../src/cli/progress.js';
import { openDataDir } from '../src/store/secure.js';
import { type Project, type RunningServer, project, run, startServer } from './helpers/cli.js';

const WORDS = { doing: 'verifying', done: 'verified', unit: 'aggregates' };

describe('progress lines', () => {
  afterEach(() => void vi.useRealTimers());

  it('prints the latest count once per interval, none before it, and nothing after stop', () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    const p = progressLines(WORDS, (l) => lines.push(l), 10_000);
    p.update(10, 200);
    p.update(50, 200);
    vi.advanceTimersByTime(9_999);
    expect(lines).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(lines).toEqual(['verified 50/200 aggregates (25%)\n']);
    // Still running without moving: said again, so a stalled command is not taken for a finished one.
    vi.advanceTimersByTime(10_000);
    p.update(199, 200);
    vi.advanceTimersByTime(10_000);
    expect(lines.slice(1)).toEqual([
      'verified 50/200 aggregates (25%)\n',
      'verified 199/200 aggregates (99%)\n',
    ]);
    p.stop();
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(3);
  });

  it('prints nothing for a command that finishes within the interval', () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    const p = progressLines(WORDS, (l) => lines.push(l), 10_000);
    p.update(200, 200);
    vi.advanceTimersByTime(9_000);
    p.stop();
    vi.advanceTimersByTime(60_000);
    expect(lines).toEqual([]);
  });

  it('prints nothing until the command reports a count', () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    const p = progressLines(WORDS, (l) => lines.push(l), 1_000);
    vi.advanceTimersByTime(5_000);
    p.stop();
    expect(lines).toEqual([]);
  });
});

const AGGREGATES = 300;
const LINE = /^verified (\d+)\/(\d+) aggregates \((\d+)%\)$/;

/** The progress lines of stderr, each checked to be one; the last must be the whole count. */
function progressOf(stderr: string): Array<[number, number]> {
  const lines = stderr.split('\n').filter(Boolean);
  expect(lines.length, stderr).toBeGreaterThan(0);
  return lines.map((l) => {
    const m = LINE.exec(l);
    expect(m, l).not.toBeNull();
    return [Number(m![1]), Number(m![2])];
  });
}

describe('aggregate verify with stderr not a terminal (QA scale finding 3)', () => {
  let p: Project;
  const every = (): NodeJS.ProcessEnv => ({ ...p.env, EVENTDBX_PROGRESS_INTERVAL_MS: '0' });

  beforeAll(async () => {
    p = await project();
    const secure = await openDataDir(await loadConfig(p.configPath, p.env));
    try {
      const reqs = Array.from({ length: AGGREGATES }, (_, i) => ({
        aggregate_type: 'shipment',
        aggregate_id: `s-${i}`,
        event_type: 'shipment-created',
        payload: { n: String(i) },
      }));
      await secure.store.appendMany(reqs, { issuedBy: { group: 'local', user: 'seed' } });
    } finally {
      await secure.store.close();
    }
  }, 60_000);
  afterAll(async () => p?.cleanup());

  async function expectProgress(): Promise<string> {
    const quiet = await p.cli(['aggregate', 'verify']);
    expect({ code: quiet.code, stderr: quiet.stderr }).toEqual({ code: 0, stderr: '' });
    const r = await run(['aggregate', 'verify'], { cwd: p.dir, env: every() });
    expect(r.code, r.stderr).toBe(0);
    const counts = progressOf(r.stderr);
    // The count is said before the first aggregate is verified, then every group verified.
    expect(counts[0]![0]).toBe(0);
    const [done, total] = counts.at(-1)!;
    expect(total).toBeGreaterThanOrEqual(AGGREGATES);
    expect(done).toBe(total);
    expect(r.stderr.split('\n').at(-2)).toMatch(/\(100%\)$/);
    // The output is the command's, whatever its stderr.
    expect(r.stdout).toBe(quiet.stdout);
    const json = await run(['aggregate', 'verify', '--json'], { cwd: p.dir, env: every() });
    expect({ code: json.code, stderr: json.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(json.stdout)).toMatchObject({ all: expect.anything() });
    return r.stdout;
  }

  it('prints progress lines on stderr on the store opened by the command', async () => {
    expect(await expectProgress()).toContain('opened by this command');
  }, 60_000);

  it('prints a backup’s progress lines too', async () => {
    const r = await run(['backup', 'backups/b1'], { cwd: p.dir, env: every() });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines.length, r.stderr).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/^backed up \d+\/\d+ entries \(\d+%\)$/);
  }, 60_000);

  describe('through a running server', () => {
    let server: RunningServer;
    beforeAll(async () => {
      server = await startServer(p);
    }, 60_000);
    afterAll(async () => void (await server?.stop()));

    it('prints the progress the server sends on the control socket', async () => {
      expect(await expectProgress()).toContain('checked by its running server');
    }, 60_000);
  });
});
