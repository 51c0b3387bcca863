/**
 * The package as users install it: every entry point package.json names exists in the build (`npm
 * test` builds first) and exports what the README shows; the embedded entry works end to end.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNode } from './helpers/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, string>;
  bin: Record<string, string>;
};
const load = (target: string) =>
  import(pathToFileURL(path.join(ROOT, target)).href) as Promise<Record<string, unknown>>;

describe('package entry points', () => {
  it.each(Object.entries(pkg.exports))('%s resolves to a built module', async (_, target) => {
    expect(existsSync(path.join(ROOT, target)), target).toBe(true);
    expect(Object.keys(await load(target)).length).toBeGreaterThan(0);
  });

  it('the bin is built', () => {
    for (const target of Object.values(pkg.bin))
      expect(existsSync(path.join(ROOT, target)), target).toBe(true);
  });

  it('the lifecycle commands (status, stop, restart, start) do not load the HTTP server: only the server process does', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-pkg-'));
    try {
      // Printed at exit: every CommonJS package the process loaded (fastify and prom-client are CommonJS).
      const preload = path.join(dir, 'loaded.cjs');
      await writeFile(
        preload,
        "process.on('exit', () => process.stderr.write('LOADED ' + Object.keys(require.cache).join(' ')));",
      );
      const bin = path.join(ROOT, Object.values(pkg.bin)[0]!);
      const { stderr } = await runNode(bin, ['status'], {
        cwd: dir,
        env: { ...process.env, NODE_OPTIONS: `--require ${preload}`, EVENTDBX_DATA_DIR: dir },
      });
      const loaded = stderr.slice(stderr.indexOf('LOADED '));
      expect(loaded).toContain('/commander/');
      expect(loaded).not.toContain('/fastify/');
      expect(loaded).not.toContain('/prom-client/');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('eventdbx/client exports the client the README shows', async () => {
    const client = await load(pkg.exports['./client']!);
    for (const name of [
      'EventDbxClient',
      'isApiError',
      'isVerificationError',
      'EventDbxCancelledError',
      'ERROR_CODES',
    ])
      expect(client[name], name).toBeDefined();
  });

  it('eventdbx embeds the store: append, read back and verify on RocksDB', async () => {
    const m = (await load(pkg.exports['.']!)) as Record<string, any>;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-pkg-'));
    try {
      const store = await m.EventStore.open({ engine: new m.RocksDbEngine(dir) });
      const who = { issuedBy: { group: 'doctors', user: 'ana' } };
      const record = await store.append(
        {
          aggregate_type: 'patient',
          aggregate_id: 'p-001',
          event_type: 'patient-added',
          payload: { name: 'Jane' },
        },
        who,
      );
      expect(record).toMatchObject({ version: 1, payload: { name: 'Jane' } });
      expect(await m.verifyAggregate(store, 'patient', 'p-001')).toMatchObject({ ok: true, version: 1 });
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(m.VERSION).toBe(
      (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    );
  });
});
