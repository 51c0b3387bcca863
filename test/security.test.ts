/**
 * Security of issue 3 on a real RocksDB data dir, driven through the built CLI: encryption at rest
 * (grep the raw bytes of every file), the config file and its masked output, wrong master keys, DEK
 * rotation and master-key re-wrapping, tamper detection (a flipped byte, a rewritten audit entry, a
 * truncated history against a saved checkpoint), the audit log, and offline checkpoint verification
 * with node:crypto alone.
 */
import { createHash, createPublicKey, randomBytes, verify as edVerify } from 'node:crypto';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRecord } from '../src/core/event.js';
import { foldState } from '../src/core/event.js';
import {
  type Frontier,
  appendLeaf,
  emptyFrontier,
  encodeFrontier,
  frontierRoot,
  rootOfLeafHashes,
} from '../src/core/merkle/index.js';
import { prefixEnd } from '../src/storage/engine.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import { ACKNOWLEDGED_HEAD } from '../src/store/acknowledged.js';
import { openJson, sealJson } from '../src/store/codec.js';
import { openEvent, sealEvent } from '../src/store/event-format.js';
import * as K from '../src/store/keys.js';
import { type SecureStore, openSecureStore } from '../src/store/secure.js';
import type { AggregateMeta } from '../src/store/types.js';
import { type Project, project, startServer, api, applyArgs } from './helpers/cli.js';

const MASTER = 'test-master';
const DEK = 'test-dek';
const me = (() => {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
})();

const projects: Project[] = [];
async function fresh(): Promise<Project> {
  const p = await project();
  projects.push(p);
  return p;
}
afterAll(async () => {
  for (const p of projects) await p.cleanup();
});

const marker = (label: string) => `${label}-${randomBytes(12).toString('hex')}`;

/** Files under `dir` (recursively) whose raw bytes contain `needle`. */
async function filesContaining(dir: string, needle: string | Buffer): Promise<string[]> {
  const want = Buffer.isBuffer(needle) ? needle : Buffer.from(needle, 'utf8');
  const hits: string[] = [];
  for (const f of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!f.isFile()) continue;
    const file = path.join(f.parentPath, f.name);
    if ((await readFile(file)).includes(want)) hits.push(path.relative(dir, file));
  }
  return hits;
}

const fileNames = async (dir: string) => (await readdir(dir)).sort();

/** Every key and value of both keyspaces, as hex lines (the logical content of the store). */
async function dump(dataDir: string): Promise<string[]> {
  const engine = new RocksDbEngine(dataDir);
  await engine.open();
  try {
    const out: string[] = [];
    for (const space of ['main', 'archive'] as const)
      for await (const [k, v] of engine.range(space))
        out.push(`${space} ${k.toString('hex')} ${v.toString('hex')}`);
    return out;
  } finally {
    await engine.close();
  }
}

/** Run `fn` on the raw engine of a data dir (no server may run). */
async function withEngine<T>(dataDir: string, fn: (e: RocksDbEngine) => Promise<T>): Promise<T> {
  const engine = new RocksDbEngine(dataDir);
  await engine.open();
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}

/**
 * Run `fn` on the store opened in this process with its keys, as an insider with the keys could, who
 * also removes the acknowledged-head file (which alone would refuse a store cut short at once; see
 * test/store/acknowledged.test.ts): the signed checkpoints must catch what they do.
 */
async function withStore<T>(dataDir: string, fn: (s: SecureStore) => Promise<T>, masterKey = MASTER) {
  await rm(path.join(dataDir, ACKNOWLEDGED_HEAD), { force: true });
  const secure = await openSecureStore(new RocksDbEngine(dataDir), { masterKey, dek: undefined });
  try {
    return await fn(secure);
  } finally {
    await secure.store.close();
  }
}

async function ok(p: Project, args: string[]) {
  const r = await p.cli(args);
  if (r.code !== 0) throw new Error(`eventdbx ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r;
}
const json = async (p: Project, args: string[]) => JSON.parse((await ok(p, [...args, '--json'])).stdout);

const apply = (p: Project, id: string, fields: Record<string, string>, event = 'patient-updated') =>
  ok(
    p,
    applyArgs(
      'patient',
      id,
      event,
      Object.entries(fields).map(([k, v]) => `${k}=${v}`),
    ),
  );

describe('encryption at rest', () => {
  it('no file under the data dir holds a payload marker: not the WAL right after the append, not the SST files after flushes', async () => {
    const p = await fresh();
    const secret = marker('PAYLOAD-MARKER');
    await apply(p, 'p-001', { diagnosis: secret, note: `see ${secret}` }, 'patient-added');
    expect((await fileNames(p.dataDir)).some((f) => f.endsWith('.log'))).toBe(true);
    expect(await filesContaining(p.dataDir, secret)).toEqual([]);

    // The state is readable with the keys.
    const got = await json(p, ['aggregate', 'get', '--aggregate', 'patient', '--aggregate-id', 'p-001']);
    expect(got.aggregate.state.diagnosis).toBe(secret);

    // Write enough to force memtable flushes and reopen (WAL recovery writes SST files).
    const bulk = marker('BULK');
    await withStore(p.dataDir, async ({ store }) => {
      const ctx = { issuedBy: { group: 'local', user: 'bulk' } };
      for (let i = 0; i < 40; i++) {
        await store.appendMany(
          Array.from({ length: 250 }, (_, j) => ({
            aggregate_type: 'patient',
            aggregate_id: `bulk-${i}-${j}`,
            event_type: 'patient-added',
            payload: { diagnosis: `${bulk}-${i}-${j}`, filler: randomBytes(300).toString('base64') },
          })),
          ctx,
        );
      }
    });
    await ok(p, ['aggregate', 'list', '--take', '1']); // reopen: recovery flushes the WAL to SST
    const files = await fileNames(p.dataDir);
    expect(files.some((f) => f.endsWith('.sst'))).toBe(true);
    expect(await filesContaining(p.dataDir, secret)).toEqual([]);
    expect(await filesContaining(p.dataDir, bulk)).toEqual([]);
    // Keys are not in the data dir either.
    expect(await filesContaining(p.dataDir, MASTER)).toEqual([]);
    expect(await filesContaining(p.dataDir, DEK)).toEqual([]);

    // Control: the grep does find plaintext written to the same engine (WAL, then SST).
    const control = marker('PLAINTEXT-CONTROL');
    await withEngine(p.dataDir, (e) =>
      e.write([{ type: 'put', space: 'main', key: Buffer.from('~control'), value: Buffer.from(control) }], {
        sync: true,
      }),
    );
    expect((await filesContaining(p.dataDir, control)).some((f) => f.endsWith('.log'))).toBe(true);
    await withEngine(p.dataDir, async () => undefined);
    expect((await filesContaining(p.dataDir, control)).some((f) => f.endsWith('.sst'))).toBe(true);
  });

  it('stores every event, state, snapshot and token record sealed with AES-256-GCM (format 0x01 and a key id)', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    await ok(p, ['aggregate', 'snapshot', '--aggregate', 'patient', '--aggregate-id', 'p-001']);
    await ok(p, ['token', 'generate', '--group', 'doctors', '--user', 'ann']);
    const sealed = await withEngine(p.dataDir, async (e) => {
      const out: Buffer[] = [];
      for (const tag of [K.TAG.meta, K.TAG.event, K.TAG.snapshot, K.TAG.token]) {
        const prefix = Buffer.from([tag]);
        for await (const [, v] of e.range('main', { gte: prefix, lt: prefixEnd(prefix) })) out.push(v);
      }
      return out;
    });
    expect(sealed.length).toBeGreaterThanOrEqual(6);
    for (const v of sealed) {
      expect(v[0]).toBe(0x01);
      expect(v.readUInt32BE(1)).toBe(1);
      expect(v.includes(Buffer.from('Jane'))).toBe(false);
    }
  });

  it('the server writes no payload to its data dir or its log either', async () => {
    const p = await fresh();
    const server = await startServer(p, ['--restrict=false']);
    const secret = marker('HTTP-MARKER');
    try {
      const r = await api(`${server.url}/v1/aggregates/patient/p-9/events`, server.adminToken, {
        body: { event_type: 'patient-added', payload: { diagnosis: secret } },
      });
      expect(r.status).toBe(201);
      // A refused write that carries the marker is not logged with it either.
      await api(`${server.url}/v1/aggregates/patient/p-9/events`, server.adminToken, {
        body: { event_type: 'patient-added', payload: { diagnosis: secret }, expected_version: 7 },
      });
    } finally {
      await server.stop();
    }
    expect(server.output()).not.toContain(secret);
    expect(await filesContaining(p.dataDir, secret)).toEqual([]);
  });
});

describe('configuration secrets', () => {
  it('keeps the config file at mode 0600, also after updates', async () => {
    const p = await fresh();
    expect((await stat(p.configPath)).mode & 0o777).toBe(0o600);
    await ok(p, ['config', '--port', '7171']);
    expect((await stat(p.configPath)).mode & 0o777).toBe(0o600);
  });

  it('creates the data dir owner-only (0700) also when the CLI opens a new store', async () => {
    const p = await fresh();
    await ok(p, ['aggregate', 'list']);
    expect((await stat(p.dataDir)).mode & 0o777).toBe(0o700);
  });

  it('`config` shows secrets masked, in human and JSON output, from the file or the environment', async () => {
    const p = await fresh();
    for (const args of [['config'], ['config', '--json'], ['config', '--port', '7272']]) {
      const r = await ok(p, args);
      expect(r.stdout).toContain('********');
      expect(r.stdout + r.stderr).not.toContain(MASTER);
      expect(r.stdout + r.stderr).not.toContain(DEK);
    }
    const env = { ...p.env, EVENTDBX_MASTER_KEY: 'env-master-secret', EVENTDBX_DEK: 'env-dek-secret' };
    const { run } = await import('./helpers/cli.js');
    const r = await run(['config', '--json'], { cwd: p.dir, env });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('env-master-secret');
    expect(r.stdout).not.toContain('env-dek-secret');
    expect(JSON.parse(r.stdout).config).toMatchObject({ master_key: '********', dek: '********' });
  });

  it('takes the keys from EVENTDBX_MASTER_KEY / EVENTDBX_DEK when the file has none', async () => {
    const p = await project({ configure: false });
    projects.push(p);
    await writeFile(p.configPath, JSON.stringify({ port: 7373 }), { mode: 0o600 });
    const env = { ...p.env, EVENTDBX_MASTER_KEY: 'env-master', EVENTDBX_DEK: 'env-dek' };
    const { run } = await import('./helpers/cli.js');
    const args = ['aggregate', 'apply', '--aggregate', 'patient', '--aggregate-id', 'p-1', '--event', 'e'];
    expect((await run(args, { cwd: p.dir, env })).code).toBe(0);
    expect((await run(['aggregate', 'list'], { cwd: p.dir, env })).code).toBe(0);
    const wrong = await run(['aggregate', 'list'], {
      cwd: p.dir,
      env: { ...env, EVENTDBX_MASTER_KEY: 'other' },
    });
    expect(wrong.stderr).toContain('EDBX_ERR_WRONG_MASTER_KEY');
  });

  it('a wrong master key fails fast with EDBX_ERR_WRONG_MASTER_KEY and changes nothing', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    await ok(p, ['token', 'generate', '--group', 'admin', '--user', 'jane']);
    const configBefore = await readFile(p.configPath);
    const contentBefore = await dump(p.dataDir);
    const { run } = await import('./helpers/cli.js');
    const wrongEnv = { ...p.env, EVENTDBX_MASTER_KEY: 'not-the-master' };
    const attempts = [
      ['aggregate', 'list'],
      ['aggregate', 'apply', '--aggregate', 'patient', '--aggregate-id', 'p-001', '--event', 'x'],
      ['token', 'generate', '--group', 'admin', '--user', 'mallory'],
      ['config', '--dek', 'new-dek'],
      ['config', '--master-key', 'mallory-master'],
    ];
    for (const args of attempts) {
      const r = await run(args, { cwd: p.dir, env: wrongEnv });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toContain('EDBX_ERR_WRONG_MASTER_KEY');
      expect(r.stderr).not.toContain('not-the-master');
    }
    // The server refuses to start too, and leaves no PID file or socket behind.
    const port = String(20000 + Math.floor(Math.random() * 20000));
    const start = await run(['start', '--foreground', '--port', port], { cwd: p.dir, env: wrongEnv });
    expect(start.code).not.toBe(0);
    expect(start.stdout + start.stderr).toContain('EDBX_ERR_WRONG_MASTER_KEY');
    const names = await fileNames(p.dataDir);
    expect(names).not.toContain('eventdbx.pid');
    expect(names).not.toContain('control.sock');
    // Nothing changed: the config file byte for byte, and every key and value of the store. (RocksDB
    // itself rewrites its MANIFEST/OPTIONS and flushes its WAL on any open, so file bytes cannot be
    // compared; the logical content can.)
    expect(await readFile(p.configPath)).toEqual(configBefore);
    expect(await dump(p.dataDir)).toEqual(contentBefore);
    // And the right key still works.
    await ok(p, ['aggregate', 'get', '--aggregate', 'patient', '--aggregate-id', 'p-001']);
  });
});

describe('key rotation', () => {
  it('`config --dek NEW` seals new records under a new key id; old events stay readable', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    const r = await ok(p, ['config', '--dek', 'second-dek']);
    expect(r.stdout + r.stderr).not.toContain('second-dek');
    await apply(p, 'p-001', { name: 'Jane Doe' });
    const got = await json(p, [
      'aggregate',
      'get',
      '--aggregate',
      'patient',
      '--aggregate-id',
      'p-001',
      '--include-events',
    ]);
    expect(got.aggregate.events.map((e: EventRecord) => e.payload.name)).toEqual(['Jane', 'Jane Doe']);
    const keyIds = await withEngine(p.dataDir, async (e) =>
      (await e.getMany('main', [K.eventKey('patient', 'p-001', 1), K.eventKey('patient', 'p-001', 2)])).map(
        (v) => v!.readUInt32BE(1),
      ),
    );
    expect(keyIds).toEqual([1, 2]);
    const verify = await p.cli(['aggregate', 'verify']);
    expect(verify.code).toBe(0);
    // A third rotation, and back to an older DEK, keep everything readable.
    await ok(p, ['config', '--dek', 'third-dek']);
    await apply(p, 'p-001', { name: 'J. Doe' });
    await ok(p, ['config', '--dek', DEK]);
    await apply(p, 'p-001', { name: 'Jane' });
    const ids = await withEngine(p.dataDir, async (e) =>
      (
        await e.getMany(
          'main',
          [3, 4].map((v) => K.eventKey('patient', 'p-001', v)),
        )
      ).map((v) => v!.readUInt32BE(1)),
    );
    expect(ids).toEqual([3, 1]);
    expect((await p.cli(['aggregate', 'verify'])).code).toBe(0);
    const audit = await json(p, ['audit', 'list']);
    const changes = audit.entries.filter((e: EventRecord) => e.event_type === 'config-changed');
    expect(changes).toHaveLength(3);
    expect(JSON.stringify(audit)).not.toMatch(/second-dek|third-dek|test-dek/);

    // Any other command given another DEK (a typo, a stale EVENTDBX_DEK) is refused and changes nothing:
    // it used to make that DEK the active key, silently and unaudited.
    const { run } = await import('./helpers/cli.js');
    const contentBefore = await dump(p.dataDir);
    for (const [dek, what] of [
      ['typo-dek', 'is not a key of this store'],
      ['third-dek', 'is an earlier key of this store'],
    ] as const) {
      const r = await run(['aggregate', 'list'], { cwd: p.dir, env: { ...p.env, EVENTDBX_DEK: dek } });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(what);
      expect(r.stderr).toContain('EDBX_ERR_DEK_MISMATCH');
      expect(r.stderr).not.toContain(dek);
    }
    expect(await dump(p.dataDir)).toEqual(contentBefore);
  });

  it('`config --master-key NEW` re-wraps the keyring without rewriting data; the old master key stops working', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    await ok(p, ['token', 'generate', '--group', 'admin', '--user', 'jane']);
    // Lines that legitimately change: the keyring, and the audit log's meta and the ledger head (the
    // change is audited). Everything else must be byte-identical afterwards.
    const changing = [K.globalKey('keyring'), K.metaKey('$audit', 'log'), K.globalKey('ledger')].map(
      (k) => `main ${k.toString('hex')} `,
    );
    const dataBefore = (await dump(p.dataDir)).filter((l) => !changing.some((c) => l.startsWith(c)));
    const keyringBefore = await withEngine(
      p.dataDir,
      async (e) => (await e.get('main', K.globalKey('keyring')))!,
    );
    const r = await ok(p, ['config', '--master-key', 'second-master']);
    expect(r.stdout + r.stderr).not.toContain('second-master');
    const dataAfter = new Set(await dump(p.dataDir));
    expect(dataBefore.filter((l) => !dataAfter.has(l))).toEqual([]);
    const keyringAfter = await withEngine(
      p.dataDir,
      async (e) => (await e.get('main', K.globalKey('keyring')))!,
    );
    expect(keyringAfter.equals(keyringBefore)).toBe(false);
    const [kb, ka] = [keyringBefore, keyringAfter].map((b) => JSON.parse(b.toString('utf8')));
    expect(ka.salt).toBe(kb.salt); // data keys unchanged
    expect(ka.keys.map((k: { id: number }) => k.id)).toEqual(kb.keys.map((k: { id: number }) => k.id));
    expect(ka.kek_salt).not.toBe(kb.kek_salt);
    // The new key (now in the config file) opens the store; the old one is refused.
    await ok(p, ['aggregate', 'get', '--aggregate', 'patient', '--aggregate-id', 'p-001']);
    const { run } = await import('./helpers/cli.js');
    const old = await run(['aggregate', 'list'], {
      cwd: p.dir,
      env: { ...p.env, EVENTDBX_MASTER_KEY: MASTER },
    });
    expect(old.stderr).toContain('EDBX_ERR_WRONG_MASTER_KEY');
    const entries = (await json(p, ['audit', 'list'])).entries as EventRecord[];
    const change = entries.find((e) => e.event_type === 'config-changed');
    expect(change?.payload.master_key).toMatch(/re-wrapped/);
    expect(change?.metadata.issued_by).toEqual({ group: 'local', user: me });
    expect(JSON.stringify(entries)).not.toMatch(/second-master|test-master/);
  });

  it('rotates keys through the running server too, and the server keeps serving old and new events', async () => {
    const p = await fresh();
    const server = await startServer(p, ['--restrict=false']);
    try {
      const url = `${server.url}/v1/aggregates/patient/p-1/events`;
      expect(
        (await api(url, server.adminToken, { body: { event_type: 'a', payload: { n: '1' } } })).status,
      ).toBe(201);
      await ok(p, ['config', '--dek', 'server-dek-2']);
      expect(
        (await api(url, server.adminToken, { body: { event_type: 'b', payload: { n: '2' } } })).status,
      ).toBe(201);
      await ok(p, ['config', '--master-key', 'server-master-2']);
      expect(
        (await api(url, server.adminToken, { body: { event_type: 'c', payload: { n: '3' } } })).status,
      ).toBe(201);
      const events = await api(url, server.adminToken);
      expect(events.body.events.map((e: EventRecord) => e.payload.n)).toEqual(['1', '2', '3']);
    } finally {
      await server.stop();
    }
    const ids = await withEngine(p.dataDir, async (e) =>
      (
        await e.getMany(
          'main',
          [1, 2, 3].map((v) => K.eventKey('patient', 'p-1', v)),
        )
      ).map((v) => v!.readUInt32BE(1)),
    );
    expect(ids).toEqual([1, 2, 2]);
    // After the restart the store opens with the new master key from the config file.
    const got = await json(p, ['aggregate', 'replay', '--aggregate', 'patient', '--aggregate-id', 'p-1']);
    expect(got.events.map((e: EventRecord) => e.payload.n)).toEqual(['1', '2', '3']);
  });
});

describe('keys given to a command while a server runs (qa2-spec #1)', () => {
  it('a wrong or stale key is refused as when no server runs, with the same line and exit code', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    const { run } = await import('./helpers/cli.js');
    const as = (env: Record<string, string>, args: string[]) =>
      run(args, { cwd: p.dir, env: { ...p.env, ...env } });
    const attempts: Array<[Record<string, string>, string[], string]> = [
      [{ EVENTDBX_DEK: 'typo-dek' }, ['aggregate', 'list'], 'is not a key of this store'],
      [{ EVENTDBX_DEK: DEK }, ['aggregate', 'list'], 'is an earlier key of this store'],
      [{ EVENTDBX_DEK: 'typo-dek' }, applyArgs('patient', 'p-009', 'e', ['a=1']), 'EDBX_ERR_DEK_MISMATCH'],
      [{ EVENTDBX_MASTER_KEY: MASTER }, ['aggregate', 'list'], 'EDBX_ERR_WRONG_MASTER_KEY'],
      [
        { EVENTDBX_MASTER_KEY: 'typo', EVENTDBX_DEK: 'typo' },
        ['token', 'generate', '--group', 'admin', '--user', 'mallory'],
        'EDBX_ERR_WRONG_MASTER_KEY',
      ],
    ];
    const server = await startServer(p, ['--restrict=false']);
    const withServer: string[] = [];
    try {
      // Key rotation goes through the server and still works; the server then knows the new keys.
      await ok(p, ['config', '--dek', 'second-dek']);
      await ok(p, ['config', '--master-key', 'second-master']);
      await ok(p, ['aggregate', 'list']);
      for (const [env, args, what] of attempts) {
        const r = await as(env, args);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toContain(what);
        for (const secret of Object.values(env)) expect(r.stderr).not.toContain(`${secret} `);
        withServer.push(r.stderr);
      }
      // Nothing was written: no aggregate p-009, no token for mallory.
      const got = await api(`${server.url}/v1/aggregates/patient/p-009`, server.adminToken);
      expect(got.status).toBe(404);
      const tokens = await api(`${server.url}/v1/tokens`, server.adminToken);
      expect(JSON.stringify(tokens.body)).not.toContain('mallory');
    } finally {
      await server.stop();
    }
    // Without a server: the very same lines.
    const direct: string[] = [];
    for (const [env, args] of attempts) direct.push((await as(env, args)).stderr);
    expect(withServer).toEqual(direct);
  });
});

describe('tamper detection', () => {
  it('one changed byte of an encrypted event is reported by reads and by verify, never returned as data', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    await apply(p, 'p-001', { status: 'active' });
    await apply(p, 'p-002', { name: 'Bob' }, 'patient-added');
    const key = K.eventKey('patient', 'p-001', 2);
    const original = await withEngine(p.dataDir, async (e) => (await e.get('main', key))!);
    // Key id, nonce, ciphertext and tag: every part is authenticated.
    const offsets = [2, 10, 25, original.length - 1];
    for (const offset of offsets) {
      const bad = Buffer.from(original);
      bad[offset] = bad[offset]! ^ 0x01;
      await withEngine(p.dataDir, (e) =>
        e.write([{ type: 'put', space: 'main', key, value: bad }], { sync: true }),
      );
      const read = await p.cli([
        'aggregate',
        'replay',
        '--aggregate',
        'patient',
        '--aggregate-id',
        'p-001',
        '--json',
      ]);
      expect(read.code).toBe(1);
      expect(read.stderr).toContain('EDBX_ERR_INTEGRITY');
      expect(read.stdout).not.toContain('active');
      // Verification reads the same way: checked once, on the last damaged part (the tag).
      if (offset !== offsets.at(-1)) continue;
      const one = await p.cli(['aggregate', 'verify', '--aggregate', 'patient', '--aggregate-id', 'p-001']);
      expect(one.code).toBe(1);
      expect(one.stdout).toMatch(/FAIL patient\/p-001: version 2/);
      const all = await p.cli(['aggregate', 'verify', '--json']);
      expect(all.code).toBe(1);
      expect(JSON.parse(all.stdout).all.failures).toEqual([
        expect.objectContaining({ aggregate_id: 'p-001', ok: false, first_bad_version: 2 }),
      ]);
      // The untouched aggregate still reads.
      await ok(p, ['aggregate', 'get', '--aggregate', 'patient', '--aggregate-id', 'p-002']);
    }
    await withEngine(p.dataDir, (e) =>
      e.write([{ type: 'put', space: 'main', key, value: original }], { sync: true }),
    );
    expect((await p.cli(['aggregate', 'verify'])).code).toBe(0);
  });

  it('one changed byte of an aggregate state is reported when the state is read', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    await withEngine(p.dataDir, async (e) => {
      const key = K.metaKey('patient', 'p-001');
      const v = Buffer.from((await e.get('main', key))!);
      v[v.length - 20] = v[v.length - 20]! ^ 0x80;
      await e.write([{ type: 'put', space: 'main', key, value: v }], { sync: true });
    });
    const r = await p.cli(['aggregate', 'get', '--aggregate', 'patient', '--aggregate-id', 'p-001']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('EDBX_ERR_INTEGRITY');
    expect(r.stdout).not.toContain('Jane');
  });

  it('an event rewritten by an insider with the keys (valid encryption, altered content) fails verify', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { dose: '5mg' }, 'patient-added');
    await apply(p, 'p-001', { dose: '10mg' });
    await withStore(p.dataDir, async ({ store }) => {
      const key = K.eventKey('patient', 'p-001', 1);
      const e = openEvent(store.env.codec, (await store.engine.get('main', key))!, 'test');
      const forged = { ...e, payload: { dose: '50mg' } };
      await store.engine.write(
        [{ type: 'put', space: 'main', key, value: sealEvent(store.env.codec, forged) }],
        {
          sync: true,
        },
      );
    });
    const r = await p.cli(['aggregate', 'verify', '--aggregate', 'patient', '--aggregate-id', 'p-001']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/version 1: event content does not match its hash/);
  });

  it('a truncated history (newest events removed, meta and ledger rewritten consistently) fails `checkpoint verify --from` an older checkpoint', async () => {
    const p = await fresh();
    for (let v = 1; v <= 3; v++) await apply(p, 'p-001', { step: String(v) });
    await apply(p, 'p-002', { name: 'Bob' }, 'patient-added');
    await apply(p, 'p-001', { step: '4' });
    await apply(p, 'p-001', { step: '5' });
    const saved = (await ok(p, ['checkpoint'])).stdout;
    const savedFile = path.join(p.dir, 'saved-checkpoint.txt');
    await writeFile(savedFile, saved);
    expect(saved.split('\n')[1]).toBe('6');
    // The untouched store extends its own checkpoint, also after more writes.
    await ok(p, ['checkpoint', 'verify', '--from', savedFile]);

    await withStore(p.dataDir, (s) => truncateNewest(s, 'patient', 'p-001', 2));
    // The rewrite is self-consistent: plain verification cannot see it...
    const verify = await p.cli(['aggregate', 'verify']);
    expect(verify.code, verify.stdout).toBe(0);
    const state = await json(p, ['aggregate', 'get', '--aggregate', 'patient', '--aggregate-id', 'p-001']);
    expect(state.aggregate).toMatchObject({ version: 3, state: { step: '3' } });
    // ...but the saved checkpoint exposes it.
    const r = await p.cli(['checkpoint', 'verify', '--from', savedFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('EDBX_ERR_CHECKPOINT_MISMATCH');
    expect(r.stderr).toMatch(/truncated/);

    // Growing the rewritten history past the saved size does not hide it: the old tree is not a prefix.
    for (let v = 4; v <= 6; v++) await apply(p, 'p-001', { step: `forged-${v}` });
    const again = await p.cli(['checkpoint', 'verify', '--from', savedFile]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('EDBX_ERR_CHECKPOINT_MISMATCH');
    expect(again.stderr).toMatch(/rewritten/);
  });

  it('a token record put back from before a refresh is refused by the server until an admin refreshes it (pen-test #4)', async () => {
    const p = await fresh();
    const issue = async (user: string, extra: string[] = []) =>
      (await json(p, ['token', 'generate', '--group', 'doctors', '--user', user, ...extra])).token as {
        token: string;
        id: string;
      };
    const cut = await issue('exp-doc', ['--expiration', '100000']);
    const other = await issue('ann');
    const key = K.tokenKey(createHash('sha256').update(cut.token).digest('hex'));
    const before = await withEngine(p.dataDir, async (e) => (await e.get('main', key))!);
    await ok(p, ['token', 'refresh', '--token', cut.token, '--expiration', '3600']);
    await withEngine(p.dataDir, (e) =>
      e.write([{ type: 'put', space: 'main', key, value: before }], { sync: true }),
    );

    const server = await startServer(p, ['--restrict=false']);
    try {
      const url = `${server.url}/v1/aggregates`;
      const refused = await api(url, cut.token);
      expect([refused.status, refused.body.code]).toEqual([401, 'EDBX_ERR_TOKEN_DISTRUSTED']);
      expect(refused.body.detail).toMatch(/eventdbx audit verify/);
      expect(server.output()).toMatch(
        new RegExp(`token ${cut.id}: expiry \\S+, the audit log records expiry \\S+: refused until an admin`),
      );
      expect((await api(url, other.token)).status).toBe(200);
      // A refresh stores a record the log vouches for: the token works again.
      await ok(p, ['token', 'refresh', '--token', cut.id, '--expiration', '60']);
      expect((await api(url, cut.token)).status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it('refuses a checkpoint that is not signed by this store', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    const note = (await ok(p, ['checkpoint'])).stdout;
    const forged = note.replace(/^(.*\n)1\n/, '$1' + '2\n');
    expect(forged).not.toBe(note);
    const file = path.join(p.dir, 'forged.txt');
    await writeFile(file, forged);
    const r = await p.cli(['checkpoint', 'verify', '--from', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/EDBX_ERR_CHECKPOINT_MISMATCH|EDBX_ERR_INVALID_CHECKPOINT/);
  });
});

describe('audit log', () => {
  let p: Project;
  let token: string;
  let tokenId: string;
  beforeAll(async () => {
    p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    const gen = await json(p, [
      'token',
      'generate',
      '--group',
      'doctors',
      '--user',
      'ann',
      '--expiration',
      '600',
    ]);
    token = gen.token.token;
    tokenId = gen.token.id;
    await ok(p, ['token', 'refresh', '--token', token, '--limit', '10']);
    await ok(p, ['token', 'revoke', '--token', tokenId]);
    await ok(p, [
      'aggregate',
      'archive',
      '--aggregate',
      'patient',
      '--aggregate-id',
      'p-001',
      '--comment',
      'closed',
    ]);
    await ok(p, ['aggregate', 'restore', '--aggregate', 'patient', '--aggregate-id', 'p-001']);
    await ok(p, ['config', '--dek', 'audit-dek-2']);
  });

  it('lists every administrative action with who and when, and never a secret', async () => {
    const { entries } = await json(p, ['audit', 'list']);
    expect(entries.map((e: EventRecord) => e.event_type)).toEqual([
      'token-generated',
      'token-refreshed',
      'token-revoked',
      'aggregate-archived',
      'aggregate-restored',
      'config-changed',
    ]);
    for (const e of entries as EventRecord[]) {
      expect(e.metadata.issued_by).toEqual({ group: 'local', user: me });
      expect(Number.isNaN(Date.parse(e.metadata.created_at))).toBe(false);
    }
    expect(entries[0].payload).toMatchObject({ token: tokenId, group: 'doctors', user: 'ann' });
    expect(entries[1].payload.after).toMatch(/remaining=10/);
    expect(entries[3].payload).toMatchObject({ aggregate: 'patient/p-001', comment: 'closed' });
    const text = JSON.stringify(entries) + (await ok(p, ['audit', 'list'])).stdout;
    for (const secret of [token, token.slice(11), MASTER, DEK, 'audit-dek-2'])
      expect(text).not.toContain(secret);
  });

  it('`token list` (human and JSON) shows the id and status, never the token or its hash', async () => {
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha256').update(token).digest('hex');
    const listed = await json(p, ['token', 'list']);
    expect(listed.tokens).toEqual([
      expect.objectContaining({ id: tokenId, group: 'doctors', user: 'ann', status: 'revoked' }),
    ]);
    const text = JSON.stringify(listed) + (await ok(p, ['token', 'list'])).stdout;
    expect(text).toContain(tokenId);
    expect(text).not.toContain(token);
    expect(text).not.toContain(hash);
    expect(text).not.toContain('hash');
  });

  it('filters with --since and refuses a bad date', async () => {
    const { entries } = await json(p, ['audit', 'list']);
    const since = entries[3].metadata.created_at;
    const later = await json(p, ['audit', 'list', '--since', since]);
    expect(later.entries.length).toBeGreaterThanOrEqual(3);
    expect(later.entries.every((e: EventRecord) => e.metadata.created_at >= since)).toBe(true);
    const future = await json(p, ['audit', 'list', '--since', '2999-01-01']);
    expect(future.entries).toEqual([]);
    const bad = await p.cli(['audit', 'list', '--since', 'yesterday-ish']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('EDBX_ERR_INVALID_ARGUMENT');
  });

  it('`audit verify` passes, then detects an audit entry rewritten with valid encryption', async () => {
    const good = await p.cli(['audit', 'verify']);
    expect(good.code).toBe(0);
    await withStore(p.dataDir, async ({ store }) => {
      const key = K.eventKey('$audit', 'log', 3);
      const e = openEvent(store.env.codec, (await store.engine.get('main', key))!, 'test');
      expect(e.event_type).toBe('token-revoked');
      // Someone hides that they revoked the token by blaming another user.
      const forged: EventRecord = {
        ...e,
        metadata: { ...e.metadata, issued_by: { group: 'admin', user: 'eve' } },
      };
      await store.engine.write(
        [{ type: 'put', space: 'main', key, value: sealEvent(store.env.codec, forged) }],
        {
          sync: true,
        },
      );
    });
    const r = await p.cli(['audit', 'verify']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL \$audit\/log: version 3/);
  });

  it('`audit verify` detects one flipped byte of an audit entry', async () => {
    const q = await fresh();
    await ok(q, ['token', 'generate', '--group', 'admin', '--user', 'x']);
    await ok(q, ['token', 'generate', '--group', 'admin', '--user', 'y']);
    await withEngine(q.dataDir, async (e) => {
      const key = K.eventKey('$audit', 'log', 1);
      const v = Buffer.from((await e.get('main', key))!);
      v[30] = v[30]! ^ 0x04;
      await e.write([{ type: 'put', space: 'main', key, value: v }], { sync: true });
    });
    const r = await q.cli(['audit', 'verify', '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, report: { ok: false, first_bad_version: 1 } });
  });
});

describe('signed checkpoints', () => {
  it('prints a C2SP signed note that an auditor verifies offline with node:crypto and the exported public key', async () => {
    const p = await fresh();
    await apply(p, 'p-001', { name: 'Jane' }, 'patient-added');
    await apply(p, 'p-001', { status: 'active' });
    await ok(p, ['token', 'generate', '--group', 'auditors', '--user', 'aud', '--read-only']);
    const note = (await ok(p, ['checkpoint'])).stdout;
    const publicKeyPem = (await ok(p, ['checkpoint', 'public-key'])).stdout;
    expect(publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    expect(note).toMatch(
      /^eventdbx\/ledger\n\d+\n[A-Za-z0-9+/]{43}=\ntimestamp \S+\n\n— eventdbx [A-Za-z0-9+/=]+\n$/,
    );

    // ---- what the README tells an auditor to run (node:crypto only) ----
    const verifyNote = (text: string, pem: string): { size: number; root: string } | false => {
      const [body, sigBlock] = [
        text.slice(0, text.indexOf('\n\n') + 1),
        text.slice(text.indexOf('\n\n') + 2),
      ];
      const [origin, size, rootB64] = body.split('\n');
      const m = /^— (\S+) (\S+)$/m.exec(sigBlock);
      if (!origin || !m) return false;
      const keyName = m[1]!;
      const sig = Buffer.from(m[2]!, 'base64');
      const rawKey = createPublicKey(pem).export({ format: 'der', type: 'spki' }).subarray(-32);
      const keyId = createHash('sha256')
        .update(Buffer.concat([Buffer.from(keyName), Buffer.from([0x0a, 0x01]), rawKey]))
        .digest()
        .subarray(0, 4);
      if (sig.length !== 68 || !sig.subarray(0, 4).equals(keyId)) return false;
      if (!edVerify(null, Buffer.from(body), pem, sig.subarray(4))) return false;
      return { size: Number(size), root: Buffer.from(rootB64!, 'base64').toString('hex') };
    };
    // ---------------------------------------------------------------------

    const checked = verifyNote(note, publicKeyPem);
    expect(checked).not.toBe(false);
    const shown = (await json(p, ['checkpoint'])).checkpoint;
    expect(checked).toEqual({ size: shown.size, root: shown.root });
    expect(shown.public_key).toBe(publicKeyPem);
    // The root is the RFC 6962 root over every event hash in ledger order (recomputable by an auditor).
    const hashes = await withStore(p.dataDir, async ({ store }) =>
      (await store.readLog(1, 1000)).map((e) => Buffer.from(e.hash, 'hex')),
    );
    expect(hashes).toHaveLength(3);
    expect(rootOfLeafHashes(hashes).toString('hex')).toBe((checked as { root: string }).root);
    // The README's four-line snippet (signature only) gives the same answer.
    const readmeCheck = (text: string, pem: string): boolean => {
      const [body, sigLine] = text.split('\n\n');
      const sig = Buffer.from(sigLine!.split(' ')[2]!, 'base64').subarray(4);
      return edVerify(null, Buffer.from(body + '\n'), createPublicKey(pem), sig);
    };
    expect(readmeCheck(note, publicKeyPem)).toBe(true);
    expect(readmeCheck(note.replace(/\n3\n/, '\n4\n'), publicKeyPem)).toBe(false);
    // Any change to the note, or another key, fails.
    expect(verifyNote(note.replace(/\n3\n/, '\n2\n'), publicKeyPem)).toBe(false);
    const other = await fresh();
    const otherKey = (await ok(other, ['checkpoint', 'public-key'])).stdout;
    expect(verifyNote(note, otherKey)).toBe(false);
  });

  it('keeps the same signing key across restarts and master-key changes', async () => {
    const p = await fresh();
    const before = (await ok(p, ['checkpoint', 'public-key'])).stdout;
    await ok(p, ['config', '--master-key', 'another-master']);
    expect((await ok(p, ['checkpoint', 'public-key'])).stdout).toBe(before);
    expect(await filesContaining(p.dataDir, 'PRIVATE KEY')).toEqual([]);
  });
});

/**
 * What an attacker with the keys and write access to the files can do: drop the newest `n` events of
 * an aggregate (they must be the newest of the ledger too) and rewrite every derived structure —
 * events, Merkle node entries, idempotency index, meta and state, ledger entries, ledger head —
 * so that the store is self-consistent.
 */
async function truncateNewest(secure: SecureStore, type: string, id: string, n: number): Promise<void> {
  const { store } = secure;
  const engine = store.engine;
  const codec = store.env.codec;
  const events = await store.readEvents('main', type, id);
  const keep = events.slice(0, events.length - n);
  const drop = events.slice(events.length - n);
  const size = store.size;
  expect(drop.map((e) => e.position)).toEqual(Array.from({ length: n }, (_, i) => size - n + 1 + i));
  const ops: Array<Parameters<typeof engine.write>[0][number]> = [];
  for (const e of drop) {
    ops.push({ type: 'del', space: 'main', key: K.eventKey(type, id, e.version) });
    ops.push({ type: 'del', space: 'main', key: K.idempotencyKey(e.metadata.event_id) });
    ops.push({ type: 'del', space: 'main', key: K.positionKey(e.position) });
  }
  // Aggregate tree: the N entries of the dropped versions go; earlier entries never change.
  for (const e of drop) ops.push({ type: 'del', space: 'main', key: K.nodeKey(type, id, e.version) });
  let frontier: Frontier = emptyFrontier;
  for (const e of keep) frontier = appendLeaf(frontier, Buffer.from(e.hash, 'hex')).frontier;
  const metaRaw = (await engine.get('main', K.metaKey(type, id)))!;
  const meta = openJson<AggregateMeta>(codec, metaRaw, 'meta');
  const last = keep.at(-1)!;
  const rewritten: AggregateMeta = {
    ...meta,
    version: last.version,
    state: keep.reduce((s, e) => foldState(s, e.payload), {}),
    merkle_root: frontierRoot(frontier).toString('hex'),
    frontier: encodeFrontier(frontier).toString('base64'),
    updated_at: last.metadata.created_at,
    updated_by: last.metadata.issued_by,
  };
  ops.push({ type: 'put', space: 'main', key: K.metaKey(type, id), value: sealJson(codec, rewritten) });
  // Ledger: the entries of the dropped positions went above (with their nodes); recompute the head.
  let ledger: Frontier = emptyFrontier;
  for await (const [, v] of engine.range('main', {
    gte: K.positionKey(1),
    lte: K.positionKey(size - n),
  }))
    ledger = appendLeaf(ledger, Buffer.from(v.subarray(0, 32))).frontier;
  ops.push({ type: 'put', space: 'main', key: K.globalKey('ledger'), value: encodeFrontier(ledger) });
  await engine.write(ops, { sync: true });
}
