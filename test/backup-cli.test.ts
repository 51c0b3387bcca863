/**
 * `eventdbx backup` end to end: the built CLI asks a running daemon through its control socket, the
 * daemon logs who backed up what, and the README's restore story holds: stop, put the backup in
 * place, start with the same keys; `aggregate verify` passes and `checkpoint verify` reports history
 * saved after the backup as truncated. The first server on the restored backup says what the restore
 * undid (a token revoked since works again) and records the restore in the audit log, once. Each
 * backup written, directly or through the daemon, is in the audit log (`backup-taken`, QA audit
 * finding 5); a failed one is not.
 */
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Project, applyArgs, freePort, project, run, running, serverPid } from './helpers/cli.js';

interface AuditEntry {
  readonly event_type: string;
  readonly version: number;
  readonly position: number;
  readonly payload: Record<string, string>;
  readonly metadata: {
    readonly created_at: string;
    readonly issued_by: { readonly group: string; readonly user: string };
  };
}

/** The `backup-taken` entries of the audit log, as `audit list --json` prints them. */
async function backupsTaken(p: Project): Promise<AuditEntry[]> {
  const r = await p.cli(['audit', 'list', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout).entries as AuditEntry[]).filter((e) => e.event_type === 'backup-taken');
}

/** The report's point, who ran it (the CLI's OS user, as `local/<user>`) and where: the entry's fields. */
function expectRecorded(entry: AuditEntry | undefined, report: BackupJson): void {
  expect(entry?.metadata.issued_by).toEqual({ group: 'local', user: userInfo().username });
  expect(entry?.payload).toEqual({
    path: report.path,
    taken_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/),
    events: String(report.events),
    ledger_root: report.ledger_root,
  });
  expect(entry?.version).toBe(report.audit_entry);
}

interface BackupJson {
  readonly path: string;
  readonly events: number;
  readonly ledger_root: string;
  readonly audit_entry: number;
}

describe('eventdbx backup on the store, no server running', () => {
  let p: Project;
  beforeAll(async () => {
    p = await project();
  });
  afterAll(async () => {
    await p.cleanup();
  });

  it('records one backup-taken entry for the backup written and none for one refused (QA #5)', async () => {
    for (let i = 1; i <= 2; i++)
      expect((await p.cli(applyArgs('patient', 'p-1', 'patient-updated', [`n=${i}`]))).code).toBe(0);
    const backup = await p.cli(['backup', 'backups/direct', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    const report = JSON.parse(backup.stdout).backup as BackupJson;
    expect(report.events).toBe(2);
    const again = await p.cli(['backup', 'backups/direct']);
    expect(again.stderr).toMatch(/the directory is not empty.*\[EDBX_ERR_BACKUP_TARGET\]/);
    const taken = await backupsTaken(p);
    expect(taken).toHaveLength(1);
    expectRecorded(taken[0], report);
    // Readable in `audit list` (details in key order), and the log still vouches for the records beside it.
    const list = await p.cli(['audit', 'list']);
    expect(list.stdout).toContain(
      `local/${userInfo().username}  backup-taken  events=2 ledger_root=${report.ledger_root} path=${report.path} taken_at=`,
    );
    const human = await p.cli(['backup', 'backups/second']);
    expect(human.stdout).toContain(`recorded in the audit log (audit #${report.audit_entry + 1})`);
    const verified = await p.cli(['audit', 'verify']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });
});

describe('eventdbx backup through a running daemon', () => {
  let p: Project;
  const pid = () => serverPid(p.dataDir);

  beforeAll(async () => {
    p = await project();
    const r = await p.cli(['config', '--port', String(await freePort())]);
    if (r.code !== 0) throw new Error(r.stderr);
  });
  afterAll(async () => {
    const id = await pid();
    if (id && running(id)) process.kill(id, 'SIGKILL');
    await p.cleanup();
  });

  it('is listed in --help and says what it takes', async () => {
    const top = await p.cli(['--help']);
    expect(top.stdout).toMatch(/backup \[options\] <dir> +copy the whole store/);
    const help = await p.cli(['backup', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--data-dir <path>', '--json', '--config <path>'])
      expect(help.stdout).toContain(flag);
    expect(help.stdout).toMatch(/dir +a directory that does not exist yet \(or an empty one\)/);
    expect((await p.cli(['backup'])).code).toBe(2);
  });

  it('writes a backup the daemon logs, which restores with the same keys', async () => {
    expect((await p.cli(['start'])).code).toBe(0);
    for (let i = 1; i <= 3; i++)
      expect((await p.cli(applyArgs('patient', 'p-1', 'patient-updated', [`n=${i}`]))).code).toBe(0);

    // A leaver's token, revoked after the backup: the restore brings it back (and says so).
    const leaver = await p.cli(['token', 'generate', '--group', 'nurses', '--user', 'leaver', '--json']);
    expect(leaver.code, leaver.stderr).toBe(0);
    const leaverToken = JSON.parse(leaver.stdout).token as { token: string; id: string };

    // Relative to the CLI's directory, though the daemon writes it.
    const backup = await p.cli(['backup', 'backups/first', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    const report = JSON.parse(backup.stdout).backup as BackupJson;
    expect(report.path).toBe(path.join(p.dir, 'backups', 'first'));
    // The three events and the daemon's own audit entries (its admin token).
    expect(report.events).toBeGreaterThanOrEqual(3);
    expect((await readdir(path.join(p.dir, 'backups'))).sort()).toEqual(['first']);
    const again = await p.cli(['backup', 'backups/first']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/the directory is not empty.*\[EDBX_ERR_BACKUP_TARGET\]/);
    // The backup written is in the audit log, once, with who ran it; the one refused is not.
    const taken = await backupsTaken(p);
    expect(taken).toHaveLength(1);
    expectRecorded(taken[0], report);

    const log = await readFile(path.join(p.dataDir, 'eventdbx.log'), 'utf8');
    const lines = log
      .split('\n')
      .filter((l) => l.includes('"op":"backup"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.msg)).toEqual([
      'backup started',
      'backup written',
      'backup started',
      'backup not written',
    ]);
    expect(lines[3]).toMatchObject({ code: 'EDBX_ERR_BACKUP_TARGET' });
    expect(lines[0]!.issued_by).toMatchObject({ group: 'local' });
    expect(lines[1]).toMatchObject({
      target: report.path,
      events: report.events,
      audit_entry: report.audit_entry,
    });
    expect(log).not.toContain('test-master');
    expect(log).not.toContain('test-dek');

    // History goes on after the backup; an auditor saves a checkpoint of it.
    expect((await p.cli(applyArgs('patient', 'p-1', 'patient-updated', ['n=4']))).code).toBe(0);
    expect((await p.cli(['token', 'revoke', '--token', leaverToken.id])).code).toBe(0);
    const checkpoint = await p.cli(['checkpoint', '--json']);
    const note = path.join(p.dir, 'later.checkpoint');
    await writeFile(note, JSON.parse(checkpoint.stdout).checkpoint.note as string);

    // Restore: stop, put the backup in place, start with the same keys.
    expect((await p.cli(['stop'])).code).toBe(0);
    await rename(p.dataDir, path.join(p.dir, 'old-data'));
    await rename(report.path, p.dataDir);
    const started = await p.cli(['start']);
    expect(started.code).toBe(0);
    // The first server on a restored backup says what a restore undoes, and records it once.
    expect(started.stdout).toMatch(/this data dir is a backup taken at \S+ \(\d+ events\), restored/);
    expect(started.stdout).toContain('token revocations included');
    const tokens = JSON.parse((await p.cli(['token', 'list', '--json'])).stdout).tokens as Array<{
      id: string;
      status: string;
    }>;
    expect(tokens.find((t) => t.id === leaverToken.id)?.status).toBe('active');
    const restoredLog = await readFile(path.join(p.dataDir, 'eventdbx.log'), 'utf8');
    expect(restoredLog).toMatch(/"level":40,.*"backup_events":\d+.*restored/);
    const audit = async () =>
      (JSON.parse((await p.cli(['audit', 'list', '--json'])).stdout).entries as AuditEntry[]).filter(
        (e) => e.event_type === 'store-restored',
      );
    const [restored, ...more] = await audit();
    expect(more).toEqual([]);
    expect(restored!.metadata.issued_by.group).toBe('local');
    expect(restored!.payload).toMatchObject({
      backup_events: String(report.events),
      backup_ledger_root: report.ledger_root,
    });
    expect(await readdir(p.dataDir)).not.toContain('backup.json');
    // What the restore undid, listed by the command the notice gives (and the README): the old data
    // dir's audit log from the position after the backup's last event, by commit order (qa-time #1).
    const advised = /`eventdbx audit list --data-dir <old data dir> --from-position (\d+)` lists them/.exec(
      started.stdout,
    );
    expect(advised?.[1]).toBe(String(report.events + 1));
    const oldData = path.join(p.dir, 'old-data');
    const undone = await run(
      ['audit', 'list', '--data-dir', oldData, '--from-position', advised![1]!, '--json'],
      {
        cwd: p.dir,
        env: p.env,
      },
    );
    expect(undone.code, undone.stderr).toBe(0);
    const listed = JSON.parse(undone.stdout).entries as AuditEntry[];
    expect(listed.map((e) => e.event_type)).toEqual(['backup-taken', 'token-revoked']);
    expect(listed.find((e) => e.event_type === 'token-revoked')!.payload.token).toBe(leaverToken.id);
    // Exactly the entries the backup does not hold, whatever their times.
    const whole = await run(['audit', 'list', '--data-dir', oldData, '--json'], { cwd: p.dir, env: p.env });
    const after = (JSON.parse(whole.stdout).entries as AuditEntry[]).filter(
      (e) => e.position > report.events,
    );
    expect(listed).toEqual(after);
    const bad = await run(['audit', 'list', '--data-dir', oldData, '--from-position', '0'], {
      cwd: p.dir,
      env: p.env,
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--from-position.*whole number from 1.*\[EDBX_ERR_INVALID_ARGUMENT\]/);
    expect((await p.cli(['restart'])).stdout).not.toContain('restored');
    expect(await audit()).toHaveLength(1);
    const verified = await p.cli(['aggregate', 'verify', '--json']);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout).all).toMatchObject({ ok: true, ledger: { ok: true } });
    const replay = await p.cli([
      'aggregate',
      'replay',
      '--aggregate',
      'patient',
      '--aggregate-id',
      'p-1',
      '--json',
    ]);
    expect(JSON.parse(replay.stdout).events).toHaveLength(3);
    // The note has the backup's entry, the event and the revocation after the backup; the store, the
    // backup and its restore entry (the backup does not hold its own backup-taken entry).
    const truncated = await p.cli(['checkpoint', 'verify', '--from', note]);
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toContain(
      `${report.events + 3} events but the store only ${report.events + 1}: history was truncated`,
    );
    expect(truncated.stderr).toContain('[EDBX_ERR_CHECKPOINT_MISMATCH]');
    expect((await p.cli(['stop'])).code).toBe(0);
  });
});
