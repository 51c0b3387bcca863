/**
 * The daemon's log on a disk that refuses a line half-way (qa-full #5): the part written is cut off, so
 * every line of the file stays one JSON object, and once lines go through again the log says how many
 * were dropped. The disk here is a file size limit (`prlimit --fsize`), raised again from outside.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../helpers/temp.js';

const LOG_FILE = fileURLToPath(new URL('../../dist/server/log-file.js', import.meta.url));
const tempDir = tempDirs('edbx-log-full-');
const dropped = (n: number) =>
  `log lines dropped: ${n} (the disk refused them: full, or over the file size limit)`;

/** Writes one log line per line read from stdin (`big` a 3000-byte message), answering `ok` to each. */
const CHILD = `
import { createInterface } from 'node:readline';
const { LogFile, logLine } = await import(process.argv[1]);
const log = new LogFile(process.argv[2]);
for await (const cmd of createInterface({ input: process.stdin })) {
  log.write(logLine('info', cmd === 'big' ? 'x'.repeat(3000) : cmd));
  process.stdout.write('ok\\n');
}`;

describe('the log file on a disk that refuses a line half-way', () => {
  it('never keeps a torn line, and says how many lines were dropped once it writes again', async () => {
    const file = path.join(await tempDir(), 'eventdbx.log');
    const child = spawn(
      'prlimit',
      ['--fsize=2048:unlimited', process.execPath, '--input-type=module', '-e', CHILD, LOG_FILE, file],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const answers = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const send = async (cmd: string) => {
      child.stdin!.write(`${cmd}\n`);
      expect((await answers.next()).value).toBe('ok');
    };
    try {
      await send('first');
      await send('big'); // crosses the limit: part of it is written, then EFBIG
      await send('big'); // refused whole
      await send('second'); // fits again
      execFileSync('prlimit', ['--pid', String(child.pid), '--fsize=unlimited:unlimited']);
      await send('big');
    } finally {
      child.stdin!.end();
      await new Promise((r) => child.once('close', r));
    }
    const text = await readFile(file, 'utf8');
    const lines = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.msg, l.dropped_lines])).toEqual([
      ['first', undefined],
      // Each of the two lines refused is reported once a line goes through again.
      [dropped(1), 1],
      [dropped(1), 1],
      ['second', undefined],
      ['x'.repeat(3000), undefined],
    ]);
    expect(lines[1]!.level).toBe(40);
    expect(text).not.toContain('xxx{');
  });
});
