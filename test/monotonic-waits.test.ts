/**
 * Waits and deadlines are measured by the monotonic clock, so a step of the wall clock (an NTP step,
 * a VM resumed) neither ends them early nor stretches them (QA time finding 4: `eventdbx stop`
 * SIGKILLed a server still stopping gracefully when the clock jumped forward during its 15 s wait).
 * The wall clock is stepped with vitest's fake Date; timers, `performance.now()` and the processes
 * involved are real. Wall time is kept where a time is recorded or shown.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { lifecycle } from '../src/cli/server-commands.js';
import { openLocalStore } from '../src/cli/runtime.js';
import { loadConfig } from '../src/config/config.js';
import { RepeatFilter } from '../src/core/repeats.js';
import { type DeliveryHost, configurePlugin } from '../src/plugins/index.js';
import { readCursor } from '../src/plugins/repository.js';
import { Watchdog } from '../src/plugins/watchdog.js';
import { openDataDir } from '../src/store/secure.js';
import { project, running, serverPid, startServer } from './helpers/cli.js';
import { FAST, httpReceiver, jane, openStore, startHost, waitFor } from './plugins/fixtures.js';

const HOUR = 3_600_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Step the wall clock (Date) by `ms` from now; it stands still from then on. */
function stepWallClock(ms: number): void {
  const now = Date.now();
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(now + ms);
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('waits by the monotonic clock (QA time #4)', () => {
  it('stop waits its 15 s for a graceful stop although the wall clock jumps 2 hours ahead', async () => {
    const p = await project();
    const server = await startServer(p);
    const pid = server.process.pid!;
    const exited = new Promise<NodeJS.Signals | number | null>((r) =>
      server.process.once('exit', (code, signal) => r(signal ?? code)),
    );
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
      stderr.push(String(s));
      return true;
    });
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await serverPid(p.dataDir)).toBe(pid);
      // A server that takes a few seconds to stop; the wall clock jumps meanwhile.
      process.kill(pid, 'SIGSTOP');
      setTimeout(() => stepWallClock(2 * HOUR), 1_000);
      setTimeout(() => process.kill(pid, 'SIGCONT'), 2_500);
      expect(await lifecycle('stop', {}, p.configPath)).toBe(0);
      // Before: `server … did not stop within 15 s: killing it` a second into the wait.
      expect(stderr.join('')).not.toMatch(/killing/);
      expect(await exited).toBe(0);
    } finally {
      if (running(pid)) {
        process.kill(pid, 'SIGCONT');
        await server.kill();
      }
      await p.cleanup();
    }
  }, 60_000);

  it('a command waits for the store another holds although the wall clock jumps ahead', async () => {
    const p = await project();
    try {
      const config = await loadConfig(p.configPath, p.env);
      const holder = await openDataDir(config);
      vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      const opening = openLocalStore(config, 5_000);
      await sleep(300);
      stepWallClock(2 * HOUR);
      await sleep(700);
      await holder.store.close();
      // Before: EDBX_ERR_STORE_LOCKED at the first retry after the jump, the holder not waited for.
      const opened = await opening;
      await opened.store.close();
    } finally {
      await p.cleanup();
    }
  }, 30_000);

  it('a repeated log line collapsed for an interval is reported again once it passed, the clock stepped back', async () => {
    stepWallClock(0); // Date as the filter finds it, so that stepping it reaches the filter's default clock
    const repeats = new RepeatFilter(50);
    expect(repeats.pass('disk full')).toBe(0);
    expect(repeats.pass('disk full')).toBeUndefined();
    vi.setSystemTime(Date.now() - 3 * HOUR);
    await sleep(80);
    // Before: collapsed for 3 hours more (until the wall clock came back to the first report).
    expect(repeats.pass('disk full')).toBe(1);
  });

  it('a sink call in flight says how long it has run, whatever the wall clock did', async () => {
    const watchdog = new Watchdog('files', undefined);
    let end = () => {};
    const call = watchdog.run('writing a batch', () => new Promise<void>((r) => (end = r)));
    stepWallClock(2 * HOUR);
    await sleep(20);
    // Before: `writing a batch (for 7200 s)`.
    expect(watchdog.doing).toMatch(/^writing a batch \(for \d+ ms\)$/);
    end();
    await call;
  });

  it('a plugin’s cursor is still saved every 200 ms while events flow after the wall clock steps back', async () => {
    const store = await openStore();
    const rx = await httpReceiver();
    let host: DeliveryHost | undefined;
    try {
      // A batch (10 events) takes longer than the 200 ms between saves: each is saved as it is delivered.
      rx.respond = () => sleep(25).then(() => 200);
      await store.appendMany(
        Array.from({ length: 200 }, (_, i) => ({
          aggregate_type: 'patient',
          aggregate_id: `p-${i}`,
          event_type: 'added',
          payload: { n: String(i) },
        })),
        jane,
      );
      host = await startHost(store);
      await configurePlugin(store, 'http', { endpoint: rx.url, ...FAST }, jane);
      await waitFor('delivery under way', () => rx.accepted.length >= 20);
      stepWallClock(-3 * HOUR);
      const at = rx.accepted.length;
      await waitFor('50 more delivered', () => rx.accepted.length >= at + 50);
      const saved = (await readCursor(store, 'http'))?.position ?? 0;
      // Still delivering (an idle loop saves its cursor anyway), and saved well past where the step was.
      expect(rx.accepted.length).toBeLessThan(200);
      // Before: the next save was put off by the 3 hours the clock went back.
      expect(saved).toBeGreaterThan(rx.accepted[at + 30]!.position);
    } finally {
      await host?.stop();
      await rx.close();
      await store.close();
    }
  }, 60_000);
});
