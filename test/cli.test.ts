import { availableParallelism } from 'node:os';
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, project, run } from './helpers/cli.js';

describe('CLI: aggregate and config commands on the data dir (no server)', () => {
  let p: Project;
  const json = async (args: string[]) => {
    const r = await p.cli([...args, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout);
  };
  const A = ['--aggregate', 'patient', '--aggregate-id', 'p-001'];

  beforeAll(async () => {
    p = await project();
  });
  afterAll(async () => p?.cleanup());

  it('refuses to run without a configuration, and the first config needs both keys', async () => {
    const fresh = await project({ configure: false });
    try {
      const r = await fresh.cli(['aggregate', 'list']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/EDBX_ERR_CONFIG_MISSING/);
      const c = await fresh.cli(['config', '--master-key', 'only-one']);
      expect(c.code).toBe(1);
      expect(c.stderr).toMatch(/EDBX_ERR_CONFIG_KEYS_REQUIRED/);
    } finally {
      await fresh.cleanup();
    }
  });

  it('apply, get (now and at a version), replay, list, verify, with --json', async () => {
    const e1 = (
      await json([
        'aggregate',
        'apply',
        ...A,
        '--event',
        'patient-added',
        '--field',
        'name=Jane Doe',
        '--field',
        'note=a=b',
      ])
    ).event;
    expect(e1).toMatchObject({
      version: 1,
      payload: { name: 'Jane Doe', note: 'a=b' },
      metadata: { issued_by: { group: 'local' } },
    });
    await json([
      'aggregate',
      'apply',
      ...A,
      '--event',
      'patient-updated',
      '--field',
      'status=inactive',
      '--expected-version',
      '1',
    ]);
    expect((await json(['aggregate', 'get', ...A])).aggregate.state).toEqual({
      name: 'Jane Doe',
      note: 'a=b',
      status: 'inactive',
    });
    // --version belongs to `get`, not to the program (regression: it printed the program version)
    expect((await json(['aggregate', 'get', ...A, '--version', '1'])).aggregate).toMatchObject({
      version: 1,
      state: { name: 'Jane Doe', note: 'a=b' },
    });
    expect(
      (await json(['aggregate', 'replay', ...A, '--skip', '1'])).events.map(
        (e: { version: number }) => e.version,
      ),
    ).toEqual([2]);
    expect((await json(['aggregate', 'list'])).aggregates).toEqual([
      expect.objectContaining({ aggregate_id: 'p-001', version: 2, archived: false }),
    ]);
    expect((await json(['aggregate', 'verify', ...A])).report).toMatchObject({ ok: true, version: 2 });
    expect((await json(['aggregate', 'verify'])).all).toMatchObject({ ok: true, aggregates: 1 });
    expect((await p.cli(['aggregate', 'verify'])).stdout).toMatch(
      /verified: 1 aggregate, 2 events, 0 failed/,
    );
  });

  it('snapshot, archive (appends refused), restore, all audited', async () => {
    expect((await p.cli(['aggregate', 'snapshot', ...A, '--comment', 'before import'])).stdout).toBe(
      'snapshot of patient/p-001 at version 2 (comment: before import), recorded in the audit log\n',
    );
    expect((await json(['aggregate', 'snapshot', ...A, '--comment', 'checkpoint'])).snapshot).toMatchObject({
      version: 2,
      comment: 'checkpoint',
    });
    await json(['aggregate', 'archive', ...A, '--comment', 'discharged']);
    const refused = await p.cli(['aggregate', 'apply', ...A, '--event', 'patient-updated', '--field', 'x=1']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/EDBX_ERR_AGGREGATE_ARCHIVED/);
    expect((await json(['aggregate', 'list'])).aggregates[0].archived).toBe(true);
    expect((await json(['aggregate', 'get', ...A])).aggregate.state.status).toBe('inactive');
    await json(['aggregate', 'restore', ...A, '--comment', 'readmitted']);
    const audit = (await json(['audit', 'list'])).entries.map(
      (e: { event_type: string; payload: { comment?: string } }) => [e.event_type, e.payload.comment],
    );
    expect(audit).toEqual([
      ['aggregate-snapshot-taken', 'before import'],
      ['aggregate-snapshot-taken', 'checkpoint'],
      ['aggregate-archived', 'discharged'],
      ['aggregate-restored', 'readmitted'],
    ]);
  });

  it('stage and commit across aggregates atomically', async () => {
    await json([
      'aggregate',
      'apply',
      '--stage',
      '--aggregate',
      'order',
      '--aggregate-id',
      'o-1',
      '--event',
      'placed',
      '--field',
      'total=12',
    ]);
    await json([
      'aggregate',
      'apply',
      '--stage',
      '--aggregate',
      'stock',
      '--aggregate-id',
      's-9',
      '--event',
      'reserved',
      '--field',
      'qty=1',
    ]);
    expect((await p.cli(['aggregate', 'get', '--aggregate', 'order', '--aggregate-id', 'o-1'])).code).toBe(1);
    const committed = (await json(['aggregate', 'commit'])).committed;
    expect(committed.map((e: { aggregate_type: string }) => e.aggregate_type)).toEqual(['order', 'stock']);
    // Nothing left: a successful no-op (the spec's `commit`), which scripts may call any time.
    const again = await p.cli(['aggregate', 'commit']);
    expect([again.code, again.stdout.trim()]).toEqual([0, 'nothing staged: nothing to commit']);
    expect((await json(['aggregate', 'commit'])).committed).toEqual([]);
  });

  it('a bad event is refused when staged; a stage the store moved past is named at commit and can be discarded', async () => {
    const stage = (id: string, ...extra: string[]) =>
      p.cli([
        'aggregate',
        'apply',
        '--stage',
        '--aggregate',
        'order',
        '--aggregate-id',
        id,
        '--event',
        'placed',
        ...extra,
      ]);
    expect((await stage('o-3', '--expected-version', '0')).code).toBe(0);
    // Staged after the first, the second cannot be at version 0: refused now, not at commit.
    const second = await stage('o-3', '--expected-version', '0');
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/EDBX_ERR_VERSION_CONFLICT/);
    // The store moves past the staged event (o-3 now exists): commit names it and commits nothing.
    expect(
      (
        await p.cli([
          'aggregate',
          'apply',
          '--aggregate',
          'order',
          '--aggregate-id',
          'o-3',
          '--event',
          'placed',
        ])
      ).code,
    ).toBe(0);
    const refused = await p.cli(['aggregate', 'commit']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(
      /staged event #\d+ \(placed on order\/o-3\).*EDBX_ERR_VERSION_CONFLICT.*--discard.*EDBX_ERR_STAGED_EVENT_REFUSED/,
    );
    // One code in brackets, at the end (qa2-spec #12: the cause's code was bracketed first).
    expect(refused.stderr.match(/\[EDBX_[A-Z_]+\]/g)).toEqual(['[EDBX_ERR_STAGED_EVENT_REFUSED]']);
    expect(refused.stderr).toMatch(/\[EDBX_ERR_STAGED_EVENT_REFUSED\]\n$/);
    const discarded = await json(['aggregate', 'commit', '--discard']);
    expect(
      discarded.discarded.map((s: { request: { aggregate_id: string } }) => s.request.aggregate_id),
    ).toEqual(['o-3']);
    expect(
      (await json(['aggregate', 'get', '--aggregate', 'order', '--aggregate-id', 'o-3'])).aggregate.version,
    ).toBe(1);
    expect((await p.cli(['aggregate', 'commit'])).stdout).toMatch(/nothing staged: nothing to commit/);
  });

  it('concurrent commands without a server wait for each other instead of failing on the lock', async () => {
    const runs = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        p.cli([
          'aggregate',
          'apply',
          '--aggregate',
          'queue',
          '--aggregate-id',
          'q-1',
          '--event',
          'added',
          '--field',
          `n=${i}`,
        ]),
      ),
    );
    expect(runs.map((r) => [r.code, r.stderr])).toEqual(runs.map(() => [0, '']));
    expect(
      (await json(['aggregate', 'get', '--aggregate', 'queue', '--aggregate-id', 'q-1'])).aggregate.version,
    ).toBe(6);
  });

  it('bad input: one coded line on stderr, exit 1; usage errors exit 2', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [
        ['aggregate', 'apply', ...A, '--event', 'x', '--field', 'novalue'],
        1,
        /--field.*EDBX_ERR_INVALID_ARGUMENT/,
      ],
      // Before: silently dropped (`__proto__`) or the last one kept (a repeated field), and exit 0.
      [
        ['aggregate', 'apply', ...A, '--event', 'x', '--field', '__proto__=x'],
        1,
        /EDBX_ERR_INVALID_FIELD_NAME/,
      ],
      [
        ['aggregate', 'apply', ...A, '--event', 'x', '--field', 'a=1', '--field', 'a=2'],
        1,
        /--field "a": given twice.*EDBX_ERR_INVALID_ARGUMENT/,
      ],
      [
        ['aggregate', 'get', '--aggregate', 'patient', '--aggregate-id', 'nobody'],
        1,
        /EDBX_ERR_AGGREGATE_NOT_FOUND/,
      ],
      [['aggregate', 'get', ...A, '--version', 'abc'], 1, /EDBX_ERR_INVALID_VERSION/],
      // The API's code for the same mistake.
      [
        ['aggregate', 'apply', ...A, '--event', 'x', '--expected-version', '-1'],
        1,
        /EDBX_ERR_INVALID_EXPECTED_VERSION/,
      ],
      [['aggregate', 'get', ...A, '--version', '99'], 1, /has no version 99.*EDBX_ERR_EVENT_NOT_FOUND/],
      [
        ['aggregate', 'apply', '--aggregate', 'Patient', '--aggregate-id', 'x', '--event', 'e'],
        1,
        /EDBX_ERR_INVALID_AGGREGATE_TYPE/,
      ],
      [['aggregate', 'get', '--aggregate', 'patient'], 2, /required option '--aggregate-id/],
      [['aggregate', 'frobnicate'], 2, /unknown command/],
      [['aggregate', 'list', '--bogus'], 2, /unknown option/],
    ];
    for (const [args, code, stderr] of cases) {
      const r = await p.cli(args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr).toMatch(stderr);
      expect(r.stderr).not.toMatch(/\n\s+at /); // never a stack trace
      // One line, ending with its code (usage errors too: commander's used to take two, uncoded).
      expect(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr.trimEnd()).toMatch(/\[EDBX_ERR_[A-Z_]+\]$/);
    }
  });

  it('accepts --config after the command, prints help with exit 0, and masks secrets', async () => {
    const r = await run(['aggregate', 'list', '--config', p.configPath, '--json'], {
      cwd: '/',
      env: { ...process.env, EVENTDBX_CONFIG: '' },
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).aggregates.length).toBeGreaterThan(0);
    const help = await p.cli(['aggregate', 'apply', '--help']);
    expect(help.code).toBe(0);
    // Required options say so in the help, not only when they are missing.
    expect(help.stdout).toMatch(/--aggregate <type> +aggregate type, e\.g\. patient \(required\)/);
    expect(help.stdout).toMatch(/--expected-version <n> +fail unless(?:(?!required).)*$/m);
    const shown = await p.cli(['config']);
    expect(shown.stdout).toContain('********');
    expect(shown.stdout).not.toContain('test-master');
    expect(shown.stdout).not.toContain('test-dek');
  });

  it('takes the number of verification threads from the file or EVENTDBX_VERIFY_THREADS', async () => {
    const shown = JSON.parse((await p.cli(['config', '--json'])).stdout);
    expect(JSON.stringify(shown)).toContain(`"verify_threads":${Math.min(2, availableParallelism())}`);
    const env = { ...p.env, EVENTDBX_VERIFY_THREADS: '0' };
    const inline = await run(['config', '--json'], { cwd: p.dir, env });
    expect(inline.stdout).toContain('"verify_threads": 0');
    const verified = await run(['aggregate', 'verify'], { cwd: p.dir, env });
    expect(verified.code).toBe(0);
    const bad = await run(['aggregate', 'verify'], {
      cwd: p.dir,
      env: { ...p.env, EVENTDBX_VERIFY_THREADS: 'two' },
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /EVENTDBX_VERIFY_THREADS is invalid: "two" is not a whole number; use 0 to 64 \[EDBX_ERR_CONFIG_INVALID\]/,
    );
  });

  it('a wrong master key is refused before the store is opened: the data dir stays byte for byte', async () => {
    const snapshot = async () => {
      const out: Record<string, string> = {};
      for (const f of await readdir(p.dataDir)) {
        out[f] = createHash('sha256')
          .update(await readFile(path.join(p.dataDir, f)))
          .digest('hex');
      }
      return out;
    };
    const before = await snapshot();
    expect(Object.keys(before)).toContain('keyring.json');
    const r = await run(['aggregate', 'list'], {
      cwd: p.dir,
      env: { ...p.env, EVENTDBX_MASTER_KEY: 'not-the-key' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/EDBX_ERR_WRONG_MASTER_KEY/);
    expect(r.stderr).not.toContain('not-the-key');
    expect(await snapshot()).toEqual(before);
  });
});
