/**
 * Regressions of the auditor QA's finding 2: plugin configurations are checked against the audit log.
 * Someone with write access to the data dir but not the keys copies sealed plugin records (X keys)
 * back from an old backup, onto another plugin's key, or deletes them; `audit verify` reports it, and
 * the delivery host does not run the plugin (nothing reaches its target) while the others deliver.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AesGcmCodec } from '../../src/core/crypto/codec.js';
import {
  type DeliveryHost,
  configurePlugin,
  listPlugins,
  mapField,
  pluginStatus,
  removePlugin,
  retryPlugin,
} from '../../src/plugins/index.js';
import { putConfig } from '../../src/plugins/repository.js';
import { expectCode } from '../helpers/expect.js';
import type { PluginConfig } from '../../src/plugins/types.js';
import { Metrics } from '../../src/server/metrics.js';
import { RocksDbEngine } from '../../src/storage/rocksdb/rocksdb-engine.js';
import type { EventRecord } from '../../src/core/event.js';
import { PluginTrail } from '../../src/store/audit-plugins.js';
import { verifyAuditLog } from '../../src/store/audit-state.js';
import { AUDIT_ID, AUDIT_TYPE, EventStore } from '../../src/store/index.js';
import * as K from '../../src/store/keys.js';
import { tempDirs } from '../helpers/temp.js';
import { type LogLine, caughtUp, jane, recordingLogger, startHost, statusOf } from './fixtures.js';

const tempDir = tempDirs('edbx-plugin-audit-');
const codec = new AesGcmCodec({ activeKeyId: 1, keys: new Map([[1, randomBytes(32)]]) });
const secret = { aggregate_type: 'patient', aggregate_id: 'p-1', event_type: 'added' };

let dir: string;
let files: string;
let store: EventStore;
let host: DeliveryHost | undefined;
let lines: LogLine[];

async function reopen(): Promise<void> {
  await host?.stop();
  host = undefined;
  await store.close();
  store = await EventStore.open({ engine: new RocksDbEngine(dir), codec });
}

/** Start the delivery host, as the server does, recording what it logs. */
async function serve(): Promise<DeliveryHost> {
  const log = recordingLogger();
  lines = log.lines;
  host = await startHost(store, log);
  return host;
}

/** The sealed values of these X keys, as a backup of the data dir holds them. */
async function backup(...keys: Buffer[]): Promise<Array<[Buffer, Buffer]>> {
  return Promise.all(
    keys.map(async (k): Promise<[Buffer, Buffer]> => [k, (await store.engine.get('main', k))!]),
  );
}

/** Copy sealed values back, with the server stopped, as a restore of those files would. */
async function restore(entries: ReadonlyArray<readonly [Buffer, Buffer]>): Promise<void> {
  await store.engine.write(
    entries.map(([key, value]) => ({ type: 'put' as const, space: 'main' as const, key, value })),
    { sync: true },
  );
}

async function problems(): Promise<readonly string[]> {
  const { report, state } = await verifyAuditLog(store);
  expect(report.ok).toBe(true);
  return state!.problems;
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );
const config = (name: string) => K.pluginKey('config', name);
const cursor = (name: string) => K.pluginKey('cursor', name);

beforeEach(async () => {
  dir = await tempDir();
  files = await tempDir();
  store = await EventStore.open({ engine: new RocksDbEngine(dir), codec });
});
afterEach(async () => {
  await host?.stop();
  host = undefined;
  await store.close();
});

describe('a removed plugin restored from an old backup (auditor QA finding 2)', () => {
  it('is reported by audit verify, not started, and nothing reaches its old target; others deliver', async () => {
    const vendor = path.join(files, 'old-vendor.jsonl');
    await configurePlugin(store, 'json', { path: vendor }, jane);
    await configurePlugin(store, 'log', { level: 'info' }, jane);
    const old = await backup(config('json'), cursor('json'));
    await removePlugin(store, 'json', jane);
    await rm(vendor, { force: true });
    await store.append({ ...secret, payload: { diagnosis: 'SECRET-DIAGNOSIS' } }, jane);
    expect(await problems()).toEqual([]);

    await restore(old);
    await reopen();
    expect(await problems()).toEqual([
      'plugin json: stored, but the audit log records its removal (entry 3)',
    ]);

    await serve();
    await caughtUp(store, 'log');
    const json = await statusOf(store, 'json');
    expect(json.state).toBe('failed');
    expect(json.last_error).toMatchObject({
      code: 'EDBX_ERR_INTEGRITY',
      message: expect.stringContaining(
        'integrity check failed for plugin json: stored, but the audit log records its removal (entry 3); not delivering',
      ),
    });
    expect(json.last_error!.message).not.toContain('\n');
    expect((await listPlugins(store)).plugins.find((p) => p.name === 'json')?.failure).toEqual(
      json.last_error,
    );
    expect(lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([json.last_error!.message]);
    const metrics = await new Metrics(store).registry.metrics();
    expect(metrics).toContain('eventdbx_plugin_state{plugin="json",kind="json",state="failed"} 1');
    expect(metrics).toContain('eventdbx_plugin_state{plugin="log",kind="log",state="idle"} 1');

    // The log plugin delivered the event; the restored plugin never ran, so its target stays empty.
    expect(lines.some((l) => l.msg.includes('aggregate=patient id=p-1 event=added'))).toBe(true);
    await store.append({ ...secret, payload: { diagnosis: 'MORE' } }, jane);
    await caughtUp(store, 'log');
    expect(await exists(vendor)).toBe(false);
    // Nor does `plugin retry` promise a delivery that will not happen: it is refused with the reason.
    const refused = await expectCode(retryPlugin(store, 'json', jane), 'EDBX_ERR_INTEGRITY');
    expect(refused.message).toBe(json.last_error!.message);
  });

  it('removing it, or configuring it again, records the decision and ends the failure', async () => {
    const vendor = path.join(files, 'old-vendor.jsonl');
    await configurePlugin(store, 'json', { path: vendor }, jane);
    const old = await backup(config('json'), cursor('json'));
    await removePlugin(store, 'json', jane);
    await restore(old);
    await reopen();
    await serve();
    expect((await statusOf(store, 'json')).state).toBe('failed');

    await removePlugin(store, 'json', jane);
    expect(await problems()).toEqual([]);
    expect((await pluginStatus(store)).plugins).toEqual([]);
    // An admin who wants one back says so; the new entry vouches for the record it writes.
    const fresh = path.join(files, 'new.jsonl');
    await configurePlugin(store, 'json', { path: fresh }, jane);
    await store.append({ ...secret, payload: { a: '1' } }, jane);
    await caughtUp(store, 'json');
    expect(await problems()).toEqual([]);
    expect(await readFile(fresh, 'utf8')).toContain('"a":"1"');
    expect(await exists(vendor)).toBe(false);
  });
});

describe('plugin records that are not what the audit log says', () => {
  it('an older configuration put back over a newer one is found by its digest', async () => {
    const before = path.join(files, 'before.jsonl');
    const after = path.join(files, 'after.jsonl');
    await configurePlugin(store, 'json', { path: before }, jane);
    const old = await backup(config('json'));
    await configurePlugin(store, 'json', { path: after }, jane);
    await restore(old);
    await reopen();
    expect(await problems()).toEqual([
      'plugin json: the stored configuration is not the one the audit log records (entry 2)',
    ]);
    await serve();
    await store.append({ ...secret, payload: { a: '1' } }, jane);
    expect((await statusOf(store, 'json')).state).toBe('failed');
    expect(host!.running).toEqual([]);
    expect(await exists(before)).toBe(false);
  });

  it('a record copied onto another plugin, and one deleted, are reported', async () => {
    await configurePlugin(store, 'json', { path: path.join(files, 'a.jsonl') }, jane);
    const [[, sealed]] = (await backup(config('json'))) as [[Buffer, Buffer]];
    await store.engine.write(
      [
        { type: 'put', space: 'main', key: config('csv'), value: sealed },
        { type: 'del', space: 'main', key: config('json') },
      ],
      { sync: true },
    );
    await reopen();
    expect(await problems()).toEqual([
      'plugin csv: stored, but the audit log never recorded it',
      'plugin json: missing, the audit log records its configuration (entry 1)',
    ]);
    await serve();
    expect((await statusOf(store, 'csv')).state).toBe('failed');
    expect(host!.running).toEqual([]);
    expect(lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
      expect.stringContaining('plugin csv: stored, but the audit log never recorded it'),
      'integrity check failed for plugin json: missing, the audit log records its configuration (entry 1)',
    ]);
  });

  it('field mappings rolled back are reported, and the SQL plugins they apply to are not started', async () => {
    await mapField(store, { aggregate: 'patient', field: 'age', datatype: 'integer' }, jane);
    const old = await backup(K.pluginKey('mappings', ''));
    await mapField(store, { aggregate: 'patient', field: 'age', datatype: 'text' }, jane);
    await mapField(store, { aggregate: 'patient', field: 'ref', datatype: 'uuid', plugin: 'postgres' }, jane);
    await configurePlugin(store, 'sqlite', { path: path.join(files, 'mirror.db') }, jane);
    await configurePlugin(store, 'log', { level: 'info' }, jane);
    await restore(old);
    await reopen();
    expect(await problems()).toEqual([
      'field mapping patient.age (postgres and sqlite): stored "integer", the audit log records text (entry 2)',
      'field mapping patient.ref (postgres): missing, the audit log records uuid (entry 3)',
    ]);
    await serve();
    expect((await statusOf(store, 'sqlite')).last_error?.message).toContain(
      'field mapping patient.age (postgres and sqlite): stored "integer", the audit log records text (entry 2)',
    );
    expect(host!.running).toEqual(['log']);
  });

  it('a mapping mismatch names the `plugin map` command that clears it, and that command does (QA-comp #7)', async () => {
    await mapField(store, { aggregate: 'patient', field: 'age', datatype: 'integer' }, jane);
    const old = await backup(K.pluginKey('mappings', ''));
    await mapField(store, { aggregate: 'patient', field: 'age', datatype: 'text' }, jane);
    await configurePlugin(store, 'sqlite', { path: path.join(files, 'mirror.db') }, jane);
    await restore(old);
    await reopen();
    await serve();
    const fix = '`eventdbx plugin map --aggregate patient --field age --datatype text`';
    expect((await statusOf(store, 'sqlite')).last_error?.message).toBe(
      'integrity check failed for plugin sqlite: field mapping patient.age (postgres and sqlite): stored "integer", the audit log records text (entry 2); not delivering: compare it with `eventdbx audit list`, then ' +
        `run ${fix} to apply the type the audit log records again (mappings apply to every SQL plugin: configuring or removing this one does not change them)`,
    );
    // Configuring the plugin again records a new entry but leaves the mapping: still failed.
    await configurePlugin(store, 'sqlite', {}, jane);
    expect((await statusOf(store, 'sqlite')).state).toBe('failed');
    // The command the message names clears it.
    await mapField(store, { aggregate: 'patient', field: 'age', datatype: 'text' }, jane);
    expect((await statusOf(store, 'sqlite')).state).not.toBe('failed');
    expect(host!.running).toEqual(['sqlite']);
    expect(await problems()).toEqual([]);
  });

  it('each mapping problem names its own `plugin map` command: never recorded, per plugin, quoted type', () => {
    const trail = new PluginTrail();
    const mapped = (version: number, payload: Record<string, string>) =>
      ({ version, event_type: 'plugin-mapped', payload }) as unknown as EventRecord;
    trail.add([
      mapped(1, { plugin: 'base', aggregate: 'patient', field: 'n', datatype: 'numeric(10,2)' }),
      mapped(2, { plugin: 'sqlite', aggregate: 'patient', field: 'due', datatype: 'date' }),
    ]);
    const again = 'to apply the type the audit log records again';
    expect(trail.mappingIssues({ base: { patient: { x: 'integer' } }, sqlite: {} })).toEqual([
      {
        problem:
          'field mapping patient.n (postgres and sqlite): missing, the audit log records numeric(10,2) (entry 1)',
        fix: `run \`eventdbx plugin map --aggregate patient --field n --datatype 'numeric(10,2)'\` ${again}`,
      },
      {
        problem:
          'field mapping patient.x (postgres and sqlite): stored "integer", but the audit log never recorded it',
        fix: 'record the type you intend with `eventdbx plugin map --aggregate patient --field x --datatype text` (text: as if never mapped) or another --datatype',
      },
      {
        problem: 'field mapping patient.due (sqlite): missing, the audit log records date (entry 2)',
        fix: `run \`eventdbx plugin map --aggregate patient --field due --datatype date --plugin sqlite\` ${again}`,
      },
    ]);
  });

  it('an audit log that cannot be read vouches for nothing: no plugin runs', async () => {
    await configurePlugin(store, 'log', { level: 'info' }, jane);
    await configurePlugin(store, 'json', { path: path.join(files, 'a.jsonl') }, jane);
    await store.engine.write([{ type: 'del', space: 'main', key: K.eventKey(AUDIT_TYPE, AUDIT_ID, 1) }], {
      sync: true,
    });
    await reopen();
    await serve();
    expect(host!.running).toEqual([]);
    for (const name of ['json', 'log'])
      expect((await statusOf(store, name)).last_error?.message).toContain(
        `integrity check failed for plugin ${name}: the audit log cannot be read (integrity check failed for event $audit/log@1`,
      );
  });

  it('entries written before digests are compared by presence and enabled state', async () => {
    // What earlier versions wrote: a record without salt, an entry without config_digest.
    const legacy = async (enabled: boolean) =>
      store.exclusive([[AUDIT_TYPE, AUDIT_ID]], async (tx) => {
        const record = {
          name: 'json',
          kind: 'json',
          enabled,
          settings: { path: path.join(files, 'legacy.jsonl'), pretty: false },
          delivery: {
            max_attempts: 3,
            backoff_ms: 5,
            backoff_max_ms: 50,
            on_failure: 'dead-letter',
            timeout_ms: 1000,
          },
          created_at: '2026-01-01T00:00:00.000Z',
          updated_at: '2026-01-01T00:00:00.000Z',
        } satisfies PluginConfig;
        putConfig(tx, store, record);
        store.audit(tx, jane, enabled ? 'plugin-configured' : 'plugin-disabled', {
          plugin: 'json',
          target: 'legacy.jsonl',
          enabled: String(enabled),
          cursor: '1',
        });
      });
    await legacy(true);
    await store.append({ ...secret, payload: { a: '1' } }, jane);
    await reopen();
    expect(await problems()).toEqual([]);
    await serve();
    await caughtUp(store, 'json');
    const enabled = await backup(config('json'));
    await host!.stop();
    await legacy(false);
    await restore(enabled);
    await reopen();
    expect(await problems()).toEqual(['plugin json: enabled, the audit log records it disabled (entry 2)']);
    await serve();
    expect((await statusOf(store, 'json')).state).toBe('failed');
  });
});

describe('plugin changes across restarts', () => {
  it('add, change, disable, enable, remove and add again stay clean, with and without a server', async () => {
    const a = path.join(files, 'a.jsonl');
    const b = path.join(files, 'b.jsonl');
    const clean = async () => {
      expect(await problems()).toEqual([]);
      expect((await pluginStatus(store)).plugins.filter((p) => p.state === 'failed')).toEqual([]);
    };
    // Recorded with no server running (as the CLI does), then started.
    await configurePlugin(store, 'json', { path: a }, jane);
    await store.append({ ...secret, payload: { n: '1' } }, jane);
    await reopen();
    await serve();
    await caughtUp(store, 'json');
    await clean();
    // Changed while the server runs, then restarted.
    await configurePlugin(store, 'json', { path: b }, jane);
    await mapField(store, { aggregate: 'patient', field: 'n', datatype: 'integer' }, jane);
    await configurePlugin(store, 'sqlite', { path: path.join(files, 'm.db') }, jane);
    await store.append({ ...secret, payload: { n: '2' } }, jane);
    await caughtUp(store, 'json');
    await caughtUp(store, 'sqlite');
    await clean();
    await reopen();
    await serve();
    await clean();
    await configurePlugin(store, 'json', { disable: true }, jane);
    await reopen();
    await serve();
    await clean();
    expect((await statusOf(store, 'json')).state).toBe('disabled');
    await configurePlugin(store, 'json', {}, jane);
    await removePlugin(store, 'sqlite', jane);
    await reopen();
    await serve();
    await caughtUp(store, 'json');
    await clean();
    await removePlugin(store, 'json', jane);
    await configurePlugin(store, 'json', { path: a, from_now: true }, jane);
    await store.append({ ...secret, payload: { n: '3' } }, jane);
    await caughtUp(store, 'json');
    await reopen();
    await serve();
    await clean();
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
    const ns = async (file: string) =>
      (await readFile(file, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { payload: { n: string } }).payload.n);
    expect(await ns(a)).toEqual(['1', '3']);
    expect(await ns(b)).toEqual(['2']);
  });

  it('the audit entry carries a digest, never the secrets, and the salt is never shown', async () => {
    await configurePlugin(
      store,
      'http',
      { endpoint: 'https://hooks.example.com/in?token=s3cr3t', headers: ['Authorization=Bearer s3cr3t'] },
      jane,
    );
    const [entry] = await store.auditLog();
    expect(entry!.payload.config_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(entry)).not.toContain('s3cr3t');
    const listed = JSON.stringify(await listPlugins(store));
    expect(listed).not.toContain('s3cr3t');
    expect(listed).not.toContain('salt');
  });
});
