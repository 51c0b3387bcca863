/**
 * What the CLI prints, end to end on a real data dir (no server): stored text cannot inject terminal
 * escapes or fake lines, paging and idempotent retries read the same in every command, and a reader
 * that closes early ends the output quietly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { MAIN, type Project, project } from './helpers/cli.js';

const A = ['--aggregate', 'patient', '--aggregate-id', 'p-001'];
const ESC = '\u001b';
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

describe('CLI human output', () => {
  let p: Project;
  const ok = async (args: string[]) => {
    const r = await p.cli(args);
    expect(r.stderr, args.join(' ')).toBe('');
    expect(r.code).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    p = await project();
  });
  afterAll(async () => p?.cleanup());

  it('escapes control characters and newlines of stored values in the state table and the audit list', async () => {
    const evil = `Jane${ESC}[2J${ESC}[31m\nstatus   deceased\u009b1m`;
    await ok(['aggregate', 'apply', ...A, '--event', 'patient-added', '--field', `name=${evil}`]);
    await ok(['aggregate', 'archive', ...A, '--comment', `gone${ESC}]0;pwned\u0007\nfake line`]);

    const get = await ok(['aggregate', 'get', ...A, '--include-events']);
    expect(get).not.toMatch(CONTROL);
    expect(get).toContain('Jane\\u001b[2J\\u001b[31m\\nstatus   deceased\\u009b1m');
    // One line per state field: the newline in the value did not start a fake "status" row.
    expect(get.split('\n').filter((l) => /^status\s+deceased/.test(l))).toEqual([]);

    const audit = await ok(['audit', 'list']);
    expect(audit).not.toMatch(CONTROL);
    expect(audit).toContain('gone\\u001b]0;pwned\\u0007\\nfake line');
    expect(audit.trimEnd().split('\n')).toHaveLength(2); // header and one entry
  });

  it('--take 0 shows no aggregates and no events, like every page size', async () => {
    await ok(['aggregate', 'apply', '--aggregate', 'order', '--aggregate-id', 'o-1', '--event', 'placed']);
    const list = async (take: string) =>
      JSON.parse(await ok(['aggregate', 'list', '--take', take, '--json'])).aggregates.length;
    const replay = async (take: string) =>
      JSON.parse(await ok(['aggregate', 'replay', ...A, '--take', take, '--json'])).events.length;
    expect([await list('0'), await list('1'), await list('5')]).toEqual([0, 1, 2]);
    expect([await replay('0'), await replay('1')]).toEqual([0, 1]);
    expect(await ok(['aggregate', 'list', '--take', '0'])).toBe('(none)\n');
  });

  it('a retry of the same --event-id says it was already appended, and --json has "duplicate": true', async () => {
    const B = ['--aggregate', 'patient', '--aggregate-id', 'p-002'];
    await ok(['aggregate', 'apply', ...B, '--event', 'patient-added']);
    const apply = [...B, '--event', 'patient-updated', '--field', 'status=ok', '--event-id', 'evt-42'];
    const first = await ok(['aggregate', 'apply', ...apply]);
    expect(first).toMatch(/^appended patient-updated to patient\/p-002 at version 2/);
    const again = await ok(['aggregate', 'apply', ...apply]);
    expect(again).toMatch(
      /^already appended: event id evt-42 is patient-updated on patient\/p-002 at version 2 .*nothing written/,
    );
    const json = JSON.parse(await ok(['aggregate', 'apply', ...apply, '--json']));
    expect(json).toMatchObject({ duplicate: true, event: { version: 2 } });
    const fresh = ['--event', 'patient-updated', '--field', 'status=new'];
    expect(JSON.parse(await ok(['aggregate', 'apply', ...B, ...fresh, '--json'])).duplicate).toBe(false);
  });

  it.each([[[]], [['--json']]])(
    'ends quietly with exit 0 when the reader closes stdout early (QA4 #8) %j',
    async (extra: string[]) => {
      await ok(['aggregate', 'apply', '--aggregate', 'order', '--aggregate-id', 'o-9', '--event', 'placed']);
      const child = spawn(process.execPath, [MAIN, 'aggregate', 'list', ...extra], {
        cwd: p.dir,
        env: p.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // The reader is gone before the command writes (`| head` that has its lines): EPIPE.
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      // Before: an unhandled 'error' event, Node's stack trace on stderr and exit 1.
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    },
  );
});
