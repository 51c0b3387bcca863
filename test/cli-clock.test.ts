/**
 * A CLI command that opens the store itself (no server runs) with a clock behind the newest time the
 * store holds (qa-time finding 2: the host's clock went back, or the data dir was written where the
 * clock was ahead) records its times at that newest time, never earlier, and says so on stderr once.
 * With the built CLI on RocksDB; the store is first written in this process with its clock 2 days ahead.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { openDataDir } from '../src/store/secure.js';
import { type Project, applyArgs, project } from './helpers/cli.js';

const AHEAD_MS = 2 * 86_400_000;
let p: Project;
let stored: string;

beforeAll(async () => {
  p = await project();
  vi.useFakeTimers({ toFake: ['Date'] });
  try {
    vi.setSystemTime(Date.now() + AHEAD_MS);
    const secure = await openDataDir(await loadConfig(p.configPath, p.env));
    try {
      const e = await secure.store.append(
        { aggregate_type: 'acct', aggregate_id: 'a1', event_type: 'deposit', payload: { amt: '100' } },
        { issuedBy: { group: 'local', user: 'seed' } },
      );
      stored = e.metadata.created_at;
    } finally {
      await secure.store.close();
    }
  } finally {
    vi.useRealTimers();
  }
});
afterAll(() => p?.cleanup());

describe('a CLI command on a store whose times are ahead of its clock (qa-time #2)', () => {
  it('records at the newest stored time and warns once on stderr', async () => {
    const r = await p.cli([...applyArgs('acct', 'a1', 'withdraw', ['amt=30']), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).event.metadata.created_at).toBe(stored);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning: the system clock'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      new RegExp(
        `^warning: the system clock is (1 d 23 h|2 d 0 h) behind the newest time this store recorded \\(${stored.replace(/\./g, '\\.')}; .*held at ${stored.replace(/\./g, '\\.')} until the clock catches up`,
      ),
    );
    const verified = await p.cli(['aggregate', 'verify', '--json']);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout).all).toMatchObject({ ok: true });
  });
});
