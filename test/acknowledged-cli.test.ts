/**
 * A data dir whose store holds fewer events than it acknowledged (its acknowledged-head file says more;
 * see test/store/acknowledged.test.ts for the store itself), as the CLI and a server meet it (QA of
 * the day, #1 and #2): reads work — so the old data dir's audit log can still be listed after a restore
 * and the store checked before deciding — writes are refused with the one coded line, and `start` runs
 * a server that serves reads, says why writes are refused, and answers /health with 503.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACKNOWLEDGED_HEAD, AcknowledgedHeadFile } from '../src/store/acknowledged.js';
import { type Project, applyArgs, freePort, project } from './helpers/cli.js';

let p: Project;

beforeAll(async () => {
  p = await project();
  for (let i = 1; i <= 3; i++) {
    const r = await p.cli(applyArgs('patient', `p-${i}`, 'patient-added', [`name=n${i}`]));
    expect(r.code, r.stderr).toBe(0);
  }
  // The file says 8 events were acknowledged: 5 more than the store holds.
  const file = path.join(p.dataDir, ACKNOWLEDGED_HEAD);
  const keeper = await AcknowledgedHeadFile.start(
    file,
    () => ({ size: 8, root: 'ab'.repeat(32) }),
    undefined,
  );
  await keeper.close();
});

afterAll(async () => {
  await p.cli(['stop']);
});

const LOST = /it holds 3 events but had acknowledged 8 by .*events 4-8 are lost.*\[EDBX_ERR_INTEGRITY\]/;

describe('a data dir that lost acknowledged events', () => {
  it('reads, lists and verifies (verify failing), and refuses writes with one coded line', async () => {
    const list = await p.cli(['aggregate', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).aggregates).toHaveLength(3);
    const audit = await p.cli(['audit', 'list']);
    expect(audit.code, audit.stderr).toBe(0);

    const verify = await p.cli(['aggregate', 'verify']);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/had acknowledged 8/);

    const write = await p.cli(applyArgs('patient', 'p-4', 'patient-added', ['name=n4']));
    expect(write.code).toBe(1);
    expect(write.stderr.trim().split('\n')).toHaveLength(1);
    expect(write.stderr).toMatch(LOST);
  });

  it('starts a server that serves reads, says why writes are refused, and fails /health', async () => {
    const port = await freePort();
    const start = await p.cli(['start', '--port', String(port)]);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toMatch(/Warning: every write is refused until the cause is fixed/);
    expect(start.stdout).toMatch(LOST);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(503);
    const failing = (await health.json()) as { detail: string };
    expect(failing).toMatchObject({ status: 'failing', code: 'EDBX_ERR_INTEGRITY', events: 3 });
    // What was lost, and who must act; not the server's files (the log and the CLI name them).
    // Its own remedy first: a restart alone does not bring lost events back.
    expect(failing.detail).toMatch(
      /^integrity check failed for the store: it holds 3 events but had acknowledged 8 \(events 4-8 are lost\): an operator must restore a backup or accept the loss; /,
    );
    expect(failing.detail).not.toContain(p.dir);
    // Through the running server, the same: reads answer, writes get the line.
    const list = await p.cli(['aggregate', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const write = await p.cli(applyArgs('patient', 'p-4', 'patient-added', ['name=n4']));
    expect(write.code).toBe(1);
    expect(write.stderr).toMatch(LOST);
    expect((await p.cli(['stop'])).code).toBe(0);
    // Its log says it once, as an error line with the code.
    const told = (await readFile(path.join(p.dataDir, 'eventdbx.log'), 'utf8'))
      .split('\n')
      .filter((l) => l.includes('every write is refused'))
      .map((l) => JSON.parse(l) as { level: number; code: string; msg: string });
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ level: 50, code: 'EDBX_ERR_INTEGRITY' });
    expect(told[0]!.msg).toMatch(/had acknowledged 8/);
  });
});
