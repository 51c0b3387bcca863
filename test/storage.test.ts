import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventDbxError } from '../src/core/errors.js';
import { StorageEngine, type RangeOptions, type Space, type WriteOp } from '../src/storage/engine.js';
import { createEngine, MemoryEngine, RocksDbEngine } from '../src/storage/index.js';
import { collect, expectCode, storageContract } from './storage/contract.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const put = (space: Space, key: string, value: string): WriteOp => ({
  type: 'put',
  space,
  key: b(key),
  value: b(value),
});

async function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-storage-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

async function withRocks(body: (engine: RocksDbEngine, location: string) => Promise<void>): Promise<void> {
  const { dir, remove } = await tempDir();
  const engine = new RocksDbEngine(path.join(dir, 'data'));
  try {
    await body(engine, engine.location);
  } finally {
    await engine.close();
    await remove();
  }
}

storageContract(
  'memory',
  async () => {
    const engine = new MemoryEngine();
    return { engine, cleanup: () => engine.close() };
  },
  { persistent: false },
);

storageContract('rocksdb', async () => {
  const { dir, remove } = await tempDir();
  const engine = new RocksDbEngine(path.join(dir, 'data'), { cacheSize: 1 << 20 });
  return {
    engine,
    cleanup: async () => {
      await engine.close();
      await remove();
    },
  };
});

describe('MemoryEngine', () => {
  it('leaves the store unchanged when a write fails (faultNextWrite)', async () => {
    const engine = new MemoryEngine();
    await engine.open();
    await engine.write([put('main', 'a', '1')], { sync: true });
    const boom = new Error('disk on fire');
    engine.faultNextWrite(boom);
    await expect(
      engine.write([put('main', 'a', '2'), put('archive', 'b', '3')], { sync: true }),
    ).rejects.toBe(boom);
    expect(await engine.get('main', b('a'))).toEqual(b('1'));
    expect(await engine.get('archive', b('b'))).toBeUndefined();
    // The fault is used up: the next write goes through.
    await engine.write([put('main', 'a', '2')], { sync: true });
    expect(await engine.get('main', b('a'))).toEqual(b('2'));
    await engine.close();
  });

  it('does not persist: every open starts empty', async () => {
    const engine = new MemoryEngine();
    await engine.open();
    await engine.write([put('main', 'a', '1')], { sync: true });
    expect(engine.stats()).toEqual({ 'keys.main': 1, 'keys.archive': 0 });
    await engine.close();
    await engine.open();
    expect(await engine.get('main', b('a'))).toBeUndefined();
    await engine.close();
  });

  it('rejects a malformed range limit', async () => {
    const engine = new MemoryEngine();
    await engine.open();
    await expectCode(() => engine.range('main', { limit: -1 }), 'EDBX_ERR_INTERNAL');
    await expectCode(() => engine.range('main', { limit: 1.5 }), 'EDBX_ERR_INTERNAL');
    expect(await collect(engine.range('main', { limit: Infinity }))).toEqual([]);
    await engine.close();
  });
});

describe('RocksDbEngine', () => {
  it('keeps both keyspaces when a new instance opens the same data dir', () =>
    withRocks(async (engine, location) => {
      await engine.open();
      await engine.write([put('main', 'k', 'v'), put('archive', 'old', 'a')], { sync: true });
      await engine.close();
      const again = new RocksDbEngine(location);
      await again.open();
      try {
        expect(await again.get('main', b('k'))).toEqual(b('v'));
        expect(await again.get('archive', b('old'))).toEqual(b('a'));
        expect(await again.get('main', b('old'))).toBeUndefined();
      } finally {
        await again.close();
      }
    }));

  it('maps a data dir held by another instance in this process to EDBX_ERR_STORE_LOCKED', () =>
    withRocks(async (engine, location) => {
      await engine.open();
      const second = new RocksDbEngine(location);
      await expectCode(() => second.open(), 'EDBX_ERR_STORE_LOCKED');
      expect(second.status).toBe('closed');
    }));

  it('maps a data dir held by another process to EDBX_ERR_STORE_LOCKED, and opens once it is released', () =>
    withRocks(async (engine, location) => {
      await engine.open();
      await engine.close();
      const binding = createRequire(import.meta.url).resolve('@nxtedition/rocksdb');
      const script = `
        const { RocksLevel } = require(${JSON.stringify(binding)});
        const db = new RocksLevel(${JSON.stringify(location)}, {});
        db.open({ createIfMissing: true, columns: { default: {}, archive: {} } }).then(() => {
          process.stdout.write('ready\\n');
          process.stdin.on('end', () => db.close().then(() => process.exit(0)));
          process.stdin.resume();
        }, (e) => { console.error(e); process.exit(1); });
      `;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      try {
        await new Promise<void>((resolve, reject) => {
          child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
          child.on('exit', (code) => reject(new Error(`lock holder exited early (${code})`)));
        });
        let caught: unknown;
        await engine.open().catch((e: unknown) => (caught = e));
        expect(caught).toBeInstanceOf(EventDbxError);
        expect((caught as EventDbxError).code).toBe('EDBX_ERR_STORE_LOCKED');
        expect((caught as EventDbxError).message).toContain(location);
        child.stdin.end();
        expect(await exited).toBe(0);
        await engine.open();
        expect(engine.status).toBe('open');
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
        await exited;
      }
    }));

  it('maps other open failures to EDBX_ERR_STORE_IO with a one-line reason', async () => {
    const { dir, remove } = await tempDir();
    try {
      const file = path.join(dir, 'not-a-dir');
      await writeFile(file, 'x');
      const engine = new RocksDbEngine(path.join(file, 'data'));
      let caught: unknown;
      await engine.open().catch((e: unknown) => (caught = e));
      expect(caught).toBeInstanceOf(EventDbxError);
      const e = caught as EventDbxError;
      expect(e.code).toBe('EDBX_ERR_STORE_IO');
      expect(e.message).toContain('not-a-dir');
      expect(e.message).not.toContain('\n');
      expect(engine.status).toBe('closed');
    } finally {
      await remove();
    }
  });

  it('validates its constructor arguments', () => {
    expect(() => new RocksDbEngine('')).toThrow(EventDbxError);
    expect(() => new RocksDbEngine('/tmp/x', { cacheSize: -1 })).toThrow(/cacheSize/);
    expect(() => new RocksDbEngine('/tmp/x', { cacheSize: 2 ** 32 })).toThrow(/cacheSize/);
  });

  it('reports cheap statistics while open', () =>
    withRocks(async (engine) => {
      expect(engine.stats()).toEqual({});
      await engine.open();
      await engine.write([put('main', 'a', '1'), put('main', 'b', '2')], { sync: false });
      const stats = engine.stats();
      expect(stats['main.keys_estimate']).toBe(2);
      expect(Object.values(stats).every((v) => typeof v === 'number')).toBe(true);
    }));

  it('applies writes in the order they were made, inline or not, and lets close finish those in flight', () =>
    withRocks(async (engine, location) => {
      await engine.open();
      // Not awaited: all are queued to the write thread before close is called.
      const writes = Array.from({ length: 51 }, (_, i) =>
        engine.write([put('main', 'k', `v${i}`), put('archive', `a${i}`, String(i))], {
          sync: i % 2 === 0,
          // An inline write must not overtake the handed-over writes still in flight.
          inline: i % 5 === 0,
        }),
      );
      await engine.close();
      await Promise.all(writes);
      const again = new RocksDbEngine(location);
      await again.open();
      try {
        expect(await again.get('main', b('k'))).toEqual(b('v50'));
        expect((await collect(again.range('archive'))).length).toBe(51);
      } finally {
        await again.close();
      }
    }));

  it('writes a batch larger than the reused native batch keeps, then goes on, inline and handed over', () =>
    withRocks(async (engine) => {
      await engine.open();
      const big = Buffer.alloc(64 * 1024, 1);
      for (const inline of [true, false]) {
        const ops = Array.from({ length: 160 }, (_, i) => put('main', `big-${inline}-${i}`, 'x'));
        const large = ops.map((op) => ({ ...op, value: big }));
        await engine.write(large, { sync: true, inline });
        await engine.write([put('main', `after-${inline}`, 'ok')], { sync: true, inline });
        await engine.write([{ type: 'del', space: 'main', key: b(`big-${inline}-0`) }], {
          sync: true,
          inline,
        });
        expect(await engine.get('main', b(`after-${inline}`))).toEqual(b('ok'));
        expect(await engine.get('main', b(`big-${inline}-159`))).toEqual(big);
        expect(await engine.get('main', b(`big-${inline}-0`))).toBeUndefined();
      }
    }));

  it('lets a process that wrote and forgot to close exit by itself', async () => {
    const { dir, remove } = await tempDir();
    try {
      const engineModule = new URL('../dist/storage/rocksdb/rocksdb-engine.js', import.meta.url).href;
      const script = `
        const { RocksDbEngine } = await import(${JSON.stringify(engineModule)});
        const engine = new RocksDbEngine(${JSON.stringify(path.join(dir, 'data'))});
        await engine.open();
        await engine.write([{ type: 'put', space: 'main', key: Buffer.from('k'), value: Buffer.from('v') }], { sync: true });
        process.stdout.write('written\\n');
      `;
      // --input-type applies to string input only, and --expose-gc is not for workers: the write
      // thread must start all the same.
      const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      clearTimeout(timer);
      expect(out).toBe('written\n');
      expect(code).toBe(0);
    } finally {
      await remove();
    }
  });

  it('ends an iteration cut short by close with EDBX_ERR_STORE_NOT_OPEN', () =>
    withRocks(async (engine) => {
      await engine.open();
      await engine.write(
        Array.from({ length: 3000 }, (_, i) => put('main', `k${String(i).padStart(5, '0')}`, 'v')),
        { sync: false },
      );
      const it = engine.range('main')[Symbol.asyncIterator]();
      await it.next();
      await engine.close();
      await expectCode(async () => {
        for (let r = await it.next(); !r.done; r = await it.next());
      }, 'EDBX_ERR_STORE_NOT_OPEN');
    }));
});

describe('StorageEngine', () => {
  class NoSyncEngine extends StorageEngine {
    readonly kind = 'nosync';
    protected async _open(): Promise<void> {}
    protected async _close(): Promise<void> {}
    protected async _get(): Promise<Buffer | undefined> {
      return undefined;
    }
    protected async _getMany(_space: Space, keys: readonly Buffer[]): Promise<(Buffer | undefined)[]> {
      return keys.map(() => undefined);
    }
    protected async _write(): Promise<void> {}
    protected async *_range(_space: Space, _options: RangeOptions): AsyncGenerator<[Buffer, Buffer]> {}
  }

  it('answers EDBX_ERR_NOT_SUPPORTED for getManySync on an engine without synchronous reads', async () => {
    const engine = new NoSyncEngine();
    await engine.open();
    await expectCode(() => engine.getManySync('main', [b('k')]), 'EDBX_ERR_NOT_SUPPORTED');
  });

  it('creates engines by kind', () => {
    expect(createEngine('memory').kind).toBe('memory');
    expect(createEngine('rocksdb', path.join(os.tmpdir(), 'never-opened')).kind).toBe('rocksdb');
    expect(() => createEngine('rocksdb')).toThrow(EventDbxError);
  });
});
