/**
 * Where a running server's port and restriction come from, end to end with the built CLI and a real
 * daemon: `restart` keeps what the server's command line gave it and reads the rest from the config
 * as it is now (so `config --port` + `restart` moves it, as `config` says), and `config --restrict`
 * makes a mode survive a crash followed by a plain `start`.
 */
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Project, applyArgs, freePort, project, run, running, serverPid } from './helpers/cli.js';

let p: Project | undefined;
afterEach(async () => {
  const pid = p && (await serverPid(p.dataDir));
  if (pid && running(pid)) process.kill(pid, 'SIGKILL');
  await p?.cleanup();
  p = undefined;
});

const ok = async (args: string[], env?: NodeJS.ProcessEnv) => {
  const r = env ? await run(args, { cwd: p!.dir, env }) : await p!.cli(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
};
const json = async (args: string[]) => JSON.parse((await ok([...args, '--json'])).stdout);
const statusOf = () => json(['status']);
/** The `server-started` entries of the audit log: who started a server in which mode, from where. */
const serverStarts = async () =>
  ((await json(['audit', 'list'])).entries as AuditEntry[])
    .filter((e) => e.event_type === 'server-started')
    .map((e) => ({ ...e.payload, by: `${e.metadata.issued_by.group}/${e.metadata.issued_by.user}` }));
interface AuditEntry {
  event_type: string;
  payload: Record<string, string>;
  metadata: { issued_by: { group: string; user: string } };
}
/** The start lines of the daemon's log. */
const startLines = async () =>
  (await readFile(path.join(p!.dataDir, 'eventdbx.log'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l).msg as string)
    .filter((m) => m.startsWith('Server listening at'));

describe('restart and the config (qa-dev #3)', () => {
  it('config --port then restart moves a server whose port came from the config, and says so', async () => {
    p = await project();
    const [a, b] = [await freePort(), await freePort()];
    await ok(['config', '--port', String(a)]);
    await ok(['start']);
    const changed = await ok(['config', '--port', String(b)]);
    expect(changed.stdout).toMatch(
      /the server running for .* \(pid \d+\) uses the new settings after `eventdbx restart`\n$/,
    );
    const restarted = await ok(['restart']);
    // Before: the restart kept port a, and the server moved to b only at some later plain start.
    expect(restarted.stdout).toContain(`port changed: ${a} -> ${b} (from the configuration)\n`);
    expect(await statusOf()).toMatchObject({ port: b });
    expect((await fetch(`http://127.0.0.1:${b}/health`)).status).toBe(200);
    // Nothing changed: nothing is said.
    const again = await json(['restart']);
    expect([again.port, again.changed]).toEqual([b, {}]);
    // A port from EVENTDBX_PORT is said to come from there, not from the configuration (qa-ops #8).
    const c = await freePort();
    const env = await ok(['restart', '--json'], { ...p.env, EVENTDBX_PORT: String(c) });
    const moved = JSON.parse(env.stdout);
    expect(moved.changed).toEqual({ port: { from: b, to: c, source: 'environment EVENTDBX_PORT' } });
    expect(moved.notices).toContain(`port changed: ${b} -> ${c} (from EVENTDBX_PORT in the environment)`);
  });

  it('a port given to start is kept by a plain restart, and config says what to run instead', async () => {
    p = await project();
    const [a, b, c] = [await freePort(), await freePort(), await freePort()];
    await ok(['config', '--port', String(a)]);
    await ok(['start', '--port', String(b)]);
    const changed = await json(['config', '--port', String(c)]);
    expect(changed).toMatchObject({ restart_needed: true, restart_command: `eventdbx restart --port ${c}` });
    const said = await ok(['config', '--port', String(c)]);
    expect(said.stdout).toContain(
      `uses the new settings after \`eventdbx restart --port ${c}\` (its start was given --port ${b}, which a plain restart keeps)`,
    );
    const kept = await json(['restart']);
    expect([kept.port, kept.changed]).toEqual([b, {}]);
    // An option given to restart wins, and is kept in turn.
    const moved = await json(['restart', '--port', String(c)]);
    expect(moved).toMatchObject({ port: c, changed: { port: { from: b, to: c, source: '--port' } } });
    expect(await json(['restart'])).toMatchObject({ port: c });
    const pidFile = JSON.parse(await readFile(path.join(p.dataDir, 'eventdbx.pid'), 'utf8'));
    expect(pidFile.given).toEqual(['port']);
  });
});

describe('config --restrict (qa-dev #4)', () => {
  it('a strict mode in the config survives a crash followed by a plain start', async () => {
    p = await project();
    await ok(['config', '--port', String(await freePort()), '--restrict', 'strict']);
    expect(JSON.parse(await readFile(p.configPath, 'utf8')).restrict).toBe('strict');
    await ok(['start']);
    expect(await statusOf()).toMatchObject({ restrict: 'strict' });
    process.kill((await serverPid(p.dataDir))!, 'SIGKILL');
    const started = await ok(['start']);
    expect(started.stdout).toContain('restrict=strict');
    expect(await statusOf()).toMatchObject({ restrict: 'strict' });
    // Before: the plain start ran restrict=true and accepted a type without a schema.
    const refused = await p.cli(applyArgs('noschema', 'n1', 'x'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/\[EDBX_ERR_SCHEMA_REQUIRED\]/);
    // Without a server, CLI commands use the configured mode too.
    await ok(['stop']);
    expect((await p.cli(applyArgs('noschema', 'n1', 'x'))).stderr).toMatch(/\[EDBX_ERR_SCHEMA_REQUIRED\]/);
  });

  it('a --restrict flag wins over the config, EVENTDBX_RESTRICT over the file', async () => {
    p = await project();
    await ok(['config', '--port', String(await freePort()), '--restrict', 'strict']);
    expect(await json(['start', '--restrict'])).toMatchObject({ restrict: 'true' });
    await ok(['stop']);
    const env = { ...p.env, EVENTDBX_RESTRICT: 'false' };
    expect(JSON.parse((await ok(['start', '--json'], env)).stdout)).toMatchObject({ restrict: 'false' });
    expect((await ok(['config', '--json'], env)).stdout).toContain('"restrict": "false"');
    await ok(['stop']);
    const bad = await run(['start'], { cwd: p.dir, env: { ...p.env, EVENTDBX_RESTRICT: 'yes' } });
    expect([bad.code, bad.stderr]).toEqual([
      1,
      'error: configuration environment EVENTDBX_RESTRICT is invalid: "yes" is not a mode; use true, strict or false [EDBX_ERR_CONFIG_INVALID]\n',
    ]);
    const badFlag = await p.cli(['config', '--restrict', 'yes']);
    expect([badFlag.code, badFlag.stderr]).toEqual([
      1,
      'error: invalid --restrict "yes": use true, strict or false [EDBX_ERR_INVALID_ARGUMENT]\n',
    ]);
    // Each start in a mode other than the configured one is in the audit log, with where the mode
    // came from and who started it, and in the log's start line (qa-schema #2).
    const by = `local/${userInfo().username}`;
    expect(await serverStarts()).toEqual([
      { restrict: 'true', source: '--restrict', configured: 'strict', by },
      { restrict: 'false', source: 'environment EVENTDBX_RESTRICT', configured: 'strict', by },
    ]);
    expect(await startLines()).toEqual([
      expect.stringMatching(
        /^Server listening at http:\/\/127\.0\.0\.1:\d+ \(restrict=true, from --restrict\)$/,
      ),
      expect.stringMatching(/ \(restrict=false, from environment EVENTDBX_RESTRICT\)$/),
    ]);
  });

  it('restart takes a config --restrict unless the running server was given --restrict', async () => {
    p = await project();
    await ok(['config', '--port', String(await freePort())]);
    await ok(['start']);
    expect((await json(['config', '--restrict', 'strict'])).restart_command).toBe('eventdbx restart');
    const restarted = await ok(['restart']);
    expect(restarted.stdout).toContain('restrict changed: true -> strict (from the configuration)\n');
    expect(await statusOf()).toMatchObject({ restrict: 'strict' });
    await ok(['restart', '--restrict=false']);
    const told = await json(['config', '--restrict', 'true']);
    expect(told.restart_command).toBe('eventdbx restart --restrict=true');
    expect(await json(['restart'])).toMatchObject({ restrict: 'false' });
    // The change is in the audit log, like the other settings'.
    const audit = await ok(['audit', 'list', '--json']);
    expect(audit.stdout).toContain('strict -> true');
    // So is every server run in another mode than the configured `true`; the first start, in the
    // configured default, records nothing (qa-schema #2).
    expect((await serverStarts()).map(({ by: _, ...m }) => m)).toEqual([
      { restrict: 'strict', source: 'configuration', configured: 'strict' },
      { restrict: 'false', source: '--restrict', configured: 'strict' },
      { restrict: 'false', source: '--restrict', configured: 'true' },
    ]);
    expect((await startLines())[0]).toMatch(/ \(restrict=true, from configuration\)$/);
    expect(await json(['audit', 'verify'])).toMatchObject({ ok: true });
  });
});

describe('CLI commands that write events with no server running', () => {
  it('record a mode other than the configured `true` in the audit log first, as a start does', async () => {
    p = await project();
    await ok(['schema', 'create', '--aggregate', 'patient', '--events', 'patient-added']);
    await ok(['schema', 'alter', 'patient', '--field', 'ssn', '--lock', 'true']);
    const off = { ...p.env, EVENTDBX_RESTRICT: 'false' };
    // The lock does not apply: schemas are off for this command, and the audit log says so.
    await ok(applyArgs('patient', 'p-1', 'patient-added', ['ssn=123']), off);
    await ok([...applyArgs('patient', 'p-2', 'other'), '--stage'], off);
    await ok(['aggregate', 'commit'], off);
    // Reads, and writes in the configured mode, record nothing.
    await ok(['aggregate', 'list'], off);
    await ok(applyArgs('patient', 'p-1', 'patient-added', ['name=ann']));
    const entries = ((await json(['audit', 'list'])).entries as AuditEntry[]).filter(
      (e) => e.event_type === 'command-run',
    );
    const by = { group: 'local', user: userInfo().username };
    const mode = { restrict: 'false', source: 'environment EVENTDBX_RESTRICT', configured: 'true' };
    expect(entries.map((e) => [e.payload, e.metadata.issued_by])).toEqual([
      [{ command: 'aggregate apply', ...mode }, by],
      [{ command: 'aggregate apply', ...mode }, by],
      [{ command: 'aggregate commit', ...mode }, by],
    ]);
    expect(await json(['audit', 'verify'])).toMatchObject({ ok: true });
  });
});
