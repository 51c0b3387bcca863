/**
 * Regression of the qa-full round's finding 4: under `ulimit -n 64` every command failed with
 * EDBX_ERR_INTERNAL ("please report it"): now EDBX_ERR_TOO_MANY_OPEN_FILES with the limit and what to
 * raise it to.
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { MAIN, type Project, freePort, nodeCommand, outcomeOf, project } from '../helpers/cli.js';

let p: Project | undefined;
afterEach(async () => {
  await p?.cleanup();
  p = undefined;
});

/** An eventdbx command of project `q` under an open-files limit of `openFiles`. */
function cliUnder(q: Project, openFiles: number, args: readonly string[]) {
  const [command, argv] = nodeCommand([MAIN, ...args], openFiles);
  const child = spawn(command, argv, { cwd: q.dir, env: q.env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  return outcomeOf(child);
}

describe('a command under a very low open-files limit (qa-full #4)', () => {
  it('fails with EDBX_ERR_TOO_MANY_OPEN_FILES, its limit and what to raise it to, not an internal error', async () => {
    p = await project();
    for (const args of [['status'], ['start', '--foreground', '--port', String(await freePort())]]) {
      const r = await cliUnder(p, 64, args);
      expect(r.code).toBe(1);
      expect(r.stderr).not.toContain('EDBX_ERR_INTERNAL');
      expect(r.stderr).toMatch(
        /^error: too many open files \(EMFILE: .*\): this process may have 64 files open \(its open-files limit\); raise the limit to at least 256: `ulimit -n 256` in the shell that starts eventdbx, or `LimitNOFILE=256` in its systemd unit, then run the command again \[EDBX_ERR_TOO_MANY_OPEN_FILES\]$/m,
      );
    }
  });
});
