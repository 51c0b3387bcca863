/**
 * `checkpoint verify --from <note> --public-key <pem>` (tamper-evidence audit, finding 17): an auditor
 * pins the key exported earlier with `checkpoint public-key`. Without it the signature is checked with
 * the key the store holds now, which an insider who replaced the keyring controls. Through the built
 * CLI on a real RocksDB data dir, without and with a running server.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putKeyringSecret, unlockKeyring, validateKeyringRecord } from '../src/core/crypto/keyring.js';
import { generateSigningKey } from '../src/core/crypto/signing.js';
import { RocksDbEngine } from '../src/storage/rocksdb/rocksdb-engine.js';
import * as K from '../src/store/keys.js';
import { type Project, applyArgs, project, startServer } from './helpers/cli.js';

let p: Project;
const file = (name: string) => path.join(p.dir, name);

async function ok(args: string[]): Promise<string> {
  const r = await p.cli(args);
  if (r.code !== 0) throw new Error(`eventdbx ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}
const verify = (note: string, key?: string) =>
  p.cli(['checkpoint', 'verify', '--from', file(note), ...(key ? ['--public-key', file(key)] : [])]);

/** What an insider with the master key can do with the server stopped: put another signing key in the keyring. */
async function replaceSigningKey(): Promise<void> {
  const engine = new RocksDbEngine(p.dataDir);
  await engine.open();
  try {
    const record = validateKeyringRecord(
      JSON.parse((await engine.get('main', K.globalKey('keyring')))!.toString()),
    );
    const { kek } = unlockKeyring(record, 'test-master');
    const forged = Buffer.from(generateSigningKey().privateKeyPem, 'utf8');
    const next = putKeyringSecret(record, kek, 'checkpoint-signing-key', forged);
    const value = Buffer.from(JSON.stringify(next), 'utf8');
    await engine.write([{ type: 'put', space: 'main', key: K.globalKey('keyring'), value }], { sync: true });
    await writeFile(path.join(p.dataDir, 'keyring.json'), JSON.stringify(next), { mode: 0o600 });
  } finally {
    await engine.close();
  }
}

beforeAll(async () => {
  p = await project();
  for (let i = 1; i <= 3; i++) await ok(applyArgs('patient', 'p-001', 'patient-updated', [`step=${i}`]));
  await writeFile(file('auditor.pub'), await ok(['checkpoint', 'public-key']));
  await writeFile(file('saved.checkpoint'), await ok(['checkpoint']));
  // Another store's key: a well-formed key that did not sign these notes.
  const other = await project();
  try {
    await writeFile(file('other.pub'), (await other.cli(['checkpoint', 'public-key'])).stdout);
  } finally {
    await other.cleanup();
  }
});
afterAll(() => p?.cleanup());

describe('checkpoint verify --public-key (finding 17)', () => {
  it('checks the saved note with the pinned key', async () => {
    const r = await verify('saved.checkpoint', 'auditor.pub');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ok the current history \(3 events/);
    const wrong = await verify('saved.checkpoint', 'other.pub');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('EDBX_ERR_CHECKPOINT_MISMATCH');
    expect(wrong.stderr).toMatch(/does not verify with the pinned public key/);
  });

  it('refuses a key file that cannot be read or holds no Ed25519 public key, naming --public-key', async () => {
    for (const key of ['missing.pub', 'saved.checkpoint']) {
      const r = await verify('saved.checkpoint', key);
      expect(r.code, key).toBe(1);
      expect(r.stderr, key).toContain('EDBX_ERR_INVALID_ARGUMENT');
      expect(r.stderr, key).toContain('--public-key');
    }
  });

  it('after the keyring was replaced, notes signed by the new key pass only without the pin', async () => {
    await replaceSigningKey();
    expect(await ok(['checkpoint', 'public-key'])).not.toBe(await readFile(file('auditor.pub'), 'utf8'));
    await writeFile(file('forged.checkpoint'), await ok(['checkpoint']));
    // The store's own key vouches for the note it just signed...
    expect((await verify('forged.checkpoint')).code).toBe(0);
    // ...the pinned key does not.
    const pinned = await verify('forged.checkpoint', 'auditor.pub');
    expect(pinned.code).toBe(1);
    expect(pinned.stderr).toContain('EDBX_ERR_CHECKPOINT_MISMATCH');
    expect(pinned.stderr).toMatch(/does not verify with the pinned public key/);
    // The genuine note still verifies with the pinned key, not with the replaced one.
    expect((await verify('saved.checkpoint', 'auditor.pub')).code).toBe(0);
    expect((await verify('saved.checkpoint')).code).toBe(1);
  });

  it('works the same through a running server', async () => {
    const server = await startServer(p, ['--restrict=false']);
    try {
      expect((await verify('saved.checkpoint', 'auditor.pub')).code).toBe(0);
      const r = await verify('forged.checkpoint', 'auditor.pub');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/pinned public key/);
    } finally {
      await server.stop();
    }
  });
});
