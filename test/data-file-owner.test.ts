/**
 * Files in the data dir that the server's user may not open (DR QA finding 11: a restore copied as
 * root left tables owned by root in a data dir of the service account). The message blamed the
 * directory (`cannot write in the data dir … make it writable`), which was writable, or was a bare
 * `EACCES` of `acknowledged-head` as EDBX_ERR_STORE_IO. It now names the file, its owner and the fix:
 * `chown -R <user>: <data dir>`, or, for a file of this user whose mode shuts it out, `chmod -R u+rwX`.
 */
import { spawnSync } from 'node:child_process';
import { chmod, chown, cp, readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDataDir } from '../src/store/secure.js';
import { tempDirs } from './helpers/temp.js';

const root = process.getuid?.() === 0;
/** What `openShutOut` answers when `nobody` cannot read this checkout. */
const UNREADABLE_CHECKOUT = 'the checkout is not readable by nobody';
const NOBODY = 65534;
let dir: string;
let seed: string;

const config = (dataDir: string) => ({
  dataDir,
  masterKey: 'owner-master',
  dek: 'owner-dek',
  memoryThreshold: 100,
  maxPayloadBytes: 256 * 1024,
  verifyThreads: 0,
});

const tempDir = tempDirs('edbx-owner-', { until: 'all' });
beforeAll(async () => {
  dir = await tempDir();
  await chmod(dir, 0o755); // so that `nobody` can reach the data dirs in it
  seed = path.join(dir, 'seed');
  const secure = await openDataDir(config(seed));
  await secure.store.append(
    { aggregate_type: 'patient', aggregate_id: 'p-1', event_type: 'admitted', payload: { ward: '3' } },
    { issuedBy: { group: 'admin', user: 'jane' } },
  );
  await secure.store.close();
  // Opened again: the write-ahead log is in a table now.
  await (await openDataDir(config(seed))).store.close();
});

/**
 * Open a copy of the seed data dir with `file` in it shut out, as `nobody` when this is root (the
 * file root's, the rest nobody's), else as this user (the file's mode 000): the error's code and message.
 */
async function openShutOut(name: string, file: (dataDir: string) => Promise<string>): Promise<string> {
  const dataDir = path.join(dir, name);
  await cp(seed, dataDir, { recursive: true });
  const shut = await file(dataDir);
  if (!root) {
    await chmod(shut, 0o000);
    return openDataDir(config(dataDir)).then(
      () => 'opened',
      (e: { code: string; message: string }) => `${e.code} ${e.message}`,
    );
  }
  for (const f of [dataDir, ...(await readdir(dataDir)).map((f) => path.join(dataDir, f))])
    if (f !== shut) await chown(f, NOBODY, NOBODY);
  // `nobody` loads modules of the checkout later (the write thread's): a checkout under a directory
  // only root may enter (a CI runner's temporary clone) cannot run this case.
  const readable = spawnSync(process.execPath, [
    '-e',
    `process.setgid(${NOBODY}); process.setuid(${NOBODY}); require('node:fs').accessSync(${JSON.stringify(path.resolve('dist/storage/rocksdb/write-worker.js'))})`,
  ]);
  if (readable.status !== 0) return UNREADABLE_CHECKOUT;
  const module = pathToFileURL(path.resolve('dist/store/secure.js')).href;
  // Loaded as root (the checkout may be root's alone), then the process becomes `nobody`.
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(module)}); process.setgid(${NOBODY}); process.setuid(${NOBODY});` +
        `await m.openDataDir(${JSON.stringify(config(dataDir))}).then(` +
        `(s) => { console.log('opened'); return s.store.close(); }, (e) => console.log(e.code, e.message));`,
    ],
    { encoding: 'utf8' },
  );
  return r.stdout.trim() || r.stderr;
}

const table = async (dataDir: string) =>
  path.join(
    dataDir,
    (await readdir(dataDir)).find((f) => f.endsWith('.sst'))!,
  );

describe('a file in the data dir this user may not open (DR #11)', () => {
  for (const [what, file] of [
    ['a table', table],
    ['acknowledged-head', async (d: string) => path.join(d, 'acknowledged-head')],
  ] as const) {
    it(`names ${what}, its owner and the fix`, async (ctx) => {
      const name = what.replace(/\W/g, '-');
      const out = await openShutOut(name, file);
      if (out === UNREADABLE_CHECKOUT) return ctx.skip();
      const dataDir = path.join(dir, name);
      const shut = await file(dataDir);
      const op = what === 'a table' ? 'open' : 'read';
      if (root)
        expect(out).toBe(
          `EDBX_ERR_DATA_FILE_ACCESS cannot ${op} ${shut} (EACCES): it belongs to root (uid 0), not to nobody (uid ${NOBODY}) who runs this command (files copied in as another user, a restore run as root?): give every file of the data dir to the server's user (\`chown -R nobody: ${dataDir}\`), or run the command as that user`,
        );
      else
        expect(out).toMatch(
          new RegExp(
            `^EDBX_ERR_DATA_FILE_ACCESS cannot ${op} ${shut} \\(EACCES\\): it belongs to this user, .*, but its mode 0000 does not let it ${op} the file: give the owner access to every file of the data dir \\(\`chmod -R u\\+rwX ${dataDir}\`\\)$`,
          ),
        );
    }, 30_000);
  }
});
