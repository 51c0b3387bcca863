/**
 * An acknowledged-head file that can no longer be written (DR QA finding 2: `chattr +i`, a full disk):
 * the check for acknowledged events lost from RocksDB's write-ahead log stopped silently, and a cut log
 * later lost 590 acknowledged events unnoticed. Now writes go on (each is durable in the store
 * already), but the failure is logged once at error level naming the file and the cause, /health says
 * `degraded` with EDBX_ERR_ACKNOWLEDGED_HEAD, /metrics has `eventdbx_acknowledged_head_ok 0`, and the
 * file is tried again until it is written, which is logged too and clears all of it.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ACKNOWLEDGED_HEAD,
  AcknowledgedHeadFile,
  readAcknowledgedHead,
} from '../../src/store/acknowledged.js';
import { post, testServer } from '../helpers/http.js';
import { makeUnwritable } from '../helpers/unwritable.js';
import { tempDirs } from '../helpers/temp.js';

const tempDir = tempDirs('edbx-ackhead-');

const event = { event_type: 'admitted', payload: { ward: '3' } };

async function until(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('an acknowledged-head file that cannot be written (DR #2)', () => {
  it('is logged once, shown by /health and /metrics while writes go on, and cleared once written again', async (ctx) => {
    const dir = await tempDir();
    const file = path.join(dir, ACKNOWLEDGED_HEAD);
    // The file as a store left it (an empty store), then shut: the server finds it up to date.
    const empty = { size: 0, root: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' };
    await (await AcknowledgedHeadFile.start(file, () => empty, undefined)).close();
    const undo = await makeUnwritable(file);
    if (!undo) return ctx.skip();
    let restored = false;
    const s = await testServer({ logs: true, storeOptions: { acknowledgedHead: { file, retryMs: 100 } } });
    try {
      // Its token was the first commit: the file could not follow it.
      await until(() => s.store.acknowledgedHeadFailure !== undefined);
      for (let i = 0; i < 3; i++)
        expect(await post(s, `/v1/aggregates/patient/p-${i}/events`, event)).toMatchObject({ status: 201 });
      await new Promise((r) => setTimeout(r, 300)); // a few retries, each failing again

      const res = await fetch(`${s.url}/health`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ status: 'degraded', code: 'EDBX_ERR_ACKNOWLEDGED_HEAD' });
      expect(body.detail).toMatch(/^the server cannot write its acknowledged-head file/);
      expect(body.detail).not.toContain(dir);
      const metrics = await (
        await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })
      ).text();
      expect(metrics).toMatch(/^eventdbx_acknowledged_head_ok 0$/m);

      const told = s.logs.filter((l) => l.code === 'EDBX_ERR_ACKNOWLEDGED_HEAD');
      expect(told).toHaveLength(1);
      expect(told[0]).toMatchObject({ level: 50 });
      expect(String(told[0]!.msg)).toMatch(
        new RegExp(
          `^cannot write ${file} \\((EPERM: operation not permitted|EACCES: permission denied), open\\): .*writes go on`,
        ),
      );

      await undo();
      restored = true;
      await until(() => s.store.acknowledgedHeadFailure === undefined);
      expect(((await (await fetch(`${s.url}/health`)).json()) as { status: string }).status).toBe('ok');
      const again = s.logs.filter((l) => l.code === 'EDBX_ERR_ACKNOWLEDGED_HEAD');
      expect(again).toHaveLength(2);
      expect(again[1]).toMatchObject({ level: 30 });
      expect(String(again[1]!.msg)).toMatch(/written again/);
      // It records everything acknowledged meanwhile.
      expect((await readAcknowledgedHead(file))?.size).toBe(s.store.size);
    } finally {
      if (!restored) await undo();
      await s.close();
    }
  });
});
