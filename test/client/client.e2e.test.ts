/**
 * Every SDK method against a real server (the built CLI's `start --foreground`): typed results, typed
 * errors carrying the server's code, paging iterators, proofs that verify with the core verifiers,
 * `verifyEvent`, schemas, checkpoints and `audit()` with a trusted-checkpoint file.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  type CheckpointView,
  EventDbxApiError,
  EventDbxClient,
  EventDbxClientError,
  EventDbxConfigError,
  EventDbxVerificationError,
  MemoryCheckpointStore,
  isApiError,
} from '../../src/client/index.js';
import { signCheckpoint } from '../../src/core/checkpoint.js';
import { verifyConsistency, verifyInclusion } from '../../src/core/merkle/index.js';
import { type Project, type RunningServer, project, startServer } from '../helpers/cli.js';
import { httpReceiver, waitFor } from '../plugins/fixtures.js';
import { rejection } from './checks.js';

const hex = (h: string) => Buffer.from(h, 'hex');

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (e instanceof EventDbxApiError ? e.code : `not an API error: ${String(e)}`),
  );
}

describe('EventDbxClient against a real server', () => {
  let p: Project;
  let server: RunningServer;
  let db: EventDbxClient;

  const token = async (...args: string[]) => {
    const r = await p.cli(['token', 'generate', '--group', 'doctors', '--user', 'bob', ...args, '--json']);
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout).token.token as string;
  };

  beforeAll(async () => {
    p = await project();
    server = await startServer(p, ['--restrict=false']);
    db = new EventDbxClient({ url: server.url, token: server.adminToken });
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('takes its URL and token from EVENTDBX_URL / EVENTDBX_TOKEN, and refuses a bad URL', async () => {
    const saved = { url: process.env.EVENTDBX_URL, token: process.env.EVENTDBX_TOKEN };
    process.env.EVENTDBX_URL = `${server.url}/`;
    process.env.EVENTDBX_TOKEN = server.adminToken;
    try {
      const fromEnv = new EventDbxClient();
      expect(fromEnv.url).toBe(server.url);
      expect((await fromEnv.listAggregates()).aggregates).toBeInstanceOf(Array);
    } finally {
      for (const [k, v] of [
        ['EVENTDBX_URL', saved.url],
        ['EVENTDBX_TOKEN', saved.token],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
    expect(() => new EventDbxClient({ url: 'localhost:7070' })).toThrow(EventDbxConfigError);
    expect(() => new EventDbxClient({ url: 'ftp://x' })).toThrow(/http/);
  });

  it('health, metrics and the OpenAPI document', async () => {
    expect(await new EventDbxClient({ url: server.url }).health()).toMatchObject({
      status: 'ok',
      restrict: 'false',
    });
    expect(await db.metrics()).toMatch(/^eventdbx_events \d+/m);
    expect((await db.openApi()).paths).toHaveProperty(['/v1/events/stream']);
  });

  it('append returns the record; expected_version and event_id behave and errors carry the code', async () => {
    const first = await db.append('patient', 'p-001', {
      event_type: 'patient-added',
      payload: { name: 'Jane Doe', age: 41, active: true },
      expected_version: 0,
      event_id: 'import-1',
    });
    expect(first).toMatchObject({
      aggregate_type: 'patient',
      aggregate_id: 'p-001',
      version: 1,
      payload: { name: 'Jane Doe', age: '41', active: 'true' },
      metadata: { event_id: 'import-1', issued_by: { group: 'admin', user: 'admin' } },
    });
    // The same event id again: the original record, not a second event.
    const again = await db.append('patient', 'p-001', {
      event_type: 'patient-added',
      payload: { name: 'Jane Doe', age: 41, active: true },
      event_id: 'import-1',
    });
    expect(again).toEqual(first);
    expect(
      await codeOf(
        db.append('patient', 'p-001', {
          event_type: 'patient-added',
          payload: { x: '1' },
          event_id: 'import-1',
        }),
      ),
    ).toBe('EDBX_ERR_EVENT_ID_CONFLICT');
    const conflict = await db
      .append('patient', 'p-001', { event_type: 'patient-updated', payload: {}, expected_version: 0 })
      .catch((e: unknown) => e);
    expect(isApiError(conflict, 'EDBX_ERR_VERSION_CONFLICT')).toBe(true);
    expect(conflict).toMatchObject({ status: 409, problem: { code: 'EDBX_ERR_VERSION_CONFLICT' } });
    expect(await codeOf(db.append('Patient', 'p-001', { event_type: 'x', payload: {} }))).toBe(
      'EDBX_ERR_INVALID_AGGREGATE_TYPE',
    );
    expect(
      await codeOf(
        db.append('patient', 'p-001', { event_type: 'x', payload: { n: {} as unknown as string } }),
      ),
    ).toBe('EDBX_ERR_INVALID_FIELD_VALUE');
    // Ids with characters that need encoding route to the right aggregate.
    const odd = await db.append('patient', 'p 002?#%', { event_type: 'patient-added', payload: {} });
    expect(odd.aggregate_id).toBe('p 002?#%');
    expect((await db.getAggregate('patient', 'p 002?#%')).version).toBe(1);
  });

  it('transaction appends to several aggregates atomically', async () => {
    const records = await db.transaction([
      { aggregate_type: 'ward', aggregate_id: 'w-1', event_type: 'opened', payload: { beds: 4 } },
      { aggregate_type: 'ward', aggregate_id: 'w-2', event_type: 'opened', payload: { beds: 6 } },
      { aggregate_type: 'ward', aggregate_id: 'w-1', event_type: 'bed-added', payload: { beds: 5 } },
    ]);
    expect(records.map((r) => `${r.aggregate_id}@${r.version}`)).toEqual(['w-1@1', 'w-2@1', 'w-1@2']);
    expect(records[1]!.position).toBe(records[0]!.position + 1);
    const code = await codeOf(
      db.transaction([
        { aggregate_type: 'ward', aggregate_id: 'w-3', event_type: 'opened', payload: {} },
        {
          aggregate_type: 'ward',
          aggregate_id: 'w-1',
          event_type: 'closed',
          payload: {},
          expected_version: 0,
        },
      ]),
    );
    expect(code).toBe('EDBX_ERR_VERSION_CONFLICT');
    expect(await codeOf(db.getAggregate('ward', 'w-3'))).toBe('EDBX_ERR_AGGREGATE_NOT_FOUND');
  });

  it('pages aggregates and events, reads state at a version, recent and single events', async () => {
    for (let i = 1; i <= 5; i++)
      for (let v = 1; v <= i * 2; v++)
        await db.append('order', `o-${i}`, {
          event_type: 'line-added',
          payload: { [`line${v}`]: `item ${v}` },
        });
    const page = await db.listAggregates({ type: 'order', take: 2 });
    expect(page.aggregates.map((a) => a.aggregate_id)).toEqual(['o-1', 'o-2']);
    expect(page.next_cursor).toEqual(expect.any(String));
    const next = await db.listAggregates({ type: 'order', take: 2, cursor: page.next_cursor! });
    expect(next.aggregates.map((a) => a.aggregate_id)).toEqual(['o-3', 'o-4']);
    const all = [];
    for await (const a of db.aggregates({ type: 'order', pageSize: 2 }))
      all.push(`${a.aggregate_id}@${a.version}`);
    expect(all).toEqual(['o-1@2', 'o-2@4', 'o-3@6', 'o-4@8', 'o-5@10']);

    const versions = [];
    for await (const e of db.events('order', 'o-5', { pageSize: 3 })) versions.push(e.version);
    expect(versions).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const tail = [];
    for await (const e of db.events('order', 'o-5', { fromVersion: 8, pageSize: 2 })) tail.push(e.version);
    expect(tail).toEqual([8, 9, 10]);
    const firstPage = await db.listEvents('order', 'o-5', { take: 4, skip: 1 });
    expect(firstPage.events.map((e) => e.version)).toEqual([2, 3, 4, 5]);

    const at3 = await db.getAggregate('order', 'o-5', { version: 3 });
    expect(at3).toMatchObject({ version: 3, state: { line1: 'item 1', line2: 'item 2', line3: 'item 3' } });
    expect(Object.keys(at3.state)).toHaveLength(3);
    expect((await db.recentEvents('order', 'o-5', 3)).map((e) => e.version)).toEqual([10, 9, 8]);
    expect((await db.recentEvents('order', 'o-5')).length).toBe(10);
    expect(await db.getEvent('order', 'o-5', 7)).toMatchObject({ version: 7, payload: { line7: 'item 7' } });
    expect(await codeOf(db.getEvent('order', 'o-5', 11))).toBe('EDBX_ERR_EVENT_NOT_FOUND');
    expect(await codeOf(db.getAggregate('order', 'nope'))).toBe('EDBX_ERR_AGGREGATE_NOT_FOUND');
    expect(await codeOf(db.listAggregates({ take: 0 }))).toBe('EDBX_ERR_INVALID_ARGUMENT');
  });

  it('serves proofs that verify with the core verifiers, and a server-side verify report', async () => {
    for (let v = 1; v <= 7; v++) await db.append('lab', 'l-1', { event_type: 'result', payload: { v } });
    const view = await db.getAggregate('lab', 'l-1');
    for (let v = 1; v <= 7; v++) {
      const e = await db.getEvent('lab', 'l-1', v);
      const proof = await db.getEventProof('lab', 'l-1', v);
      expect(proof).toMatchObject({
        leaf_index: v - 1,
        tree_size: 7,
        leaf_hash: e.hash,
        root: view.merkle_root,
      });
      expect(verifyInclusion(hex(e.hash), v - 1, 7, proof.audit_path.map(hex), hex(view.merkle_root))).toBe(
        true,
      );
      const older = await db.getEventProof('lab', 'l-1', 1, { treeSize: v });
      expect(older.root).toBe(e.merkle_root);
    }
    const c = await db.getAggregateConsistency('lab', 'l-1', 3, 7);
    const e3 = await db.getEvent('lab', 'l-1', 3);
    expect(c).toMatchObject({
      first: 3,
      second: 7,
      first_root: e3.merkle_root,
      second_root: view.merkle_root,
    });
    expect(verifyConsistency(3, 7, hex(c.first_root), hex(c.second_root), c.consistency_path.map(hex))).toBe(
      true,
    );
    expect((await db.getAggregateConsistency('lab', 'l-1', 2)).second).toBe(7);
    expect(await db.verifyAggregate('lab', 'l-1')).toMatchObject({
      ok: true,
      version: 7,
      merkle_root: view.merkle_root,
    });
    expect(await codeOf(db.getAggregateConsistency('lab', 'l-1', 5, 3))).toBe('EDBX_ERR_INVALID_PROOF_RANGE');
  });

  it('verifyEvent proves every event, and proves old events against a root held from earlier', async () => {
    for (let v = 1; v <= 6; v++)
      await db.append('rx', 'r-1', { event_type: 'dose', payload: { mg: v * 10 } });
    const held = await db.getAggregate('rx', 'r-1');
    for (let v = 1; v <= 6; v++) {
      const r = await db.verifyEvent('rx', 'r-1', v);
      expect(r.event.version).toBe(v);
      expect(r.tree).toEqual({ size: 6, root: held.merkle_root });
    }
    for (let v = 7; v <= 9; v++)
      await db.append('rx', 'r-1', { event_type: 'dose', payload: { mg: v * 10 } });
    const tree = { size: held.version, root: held.merkle_root };
    for (let v = 1; v <= 6; v++) expect((await db.verifyEvent('rx', 'r-1', v, { tree })).tree).toEqual(tree);
    expect((await db.verifyEvent('rx', 'r-1', 9)).tree.size).toBe(9);
    expect(await codeOf(db.verifyEvent('rx', 'r-1', 10))).toBe('EDBX_ERR_EVENT_NOT_FOUND');
  });

  it('schemas: create, add, alter, list, show, history and remove, admin-only writes', async () => {
    const created = await db.createSchema({
      aggregate: 'invoice',
      events: ['invoice-issued'],
      snapshot_threshold: 5,
    });
    expect(created).toMatchObject({ aggregate: 'invoice', version: 1, snapshot_threshold: 5 });
    await db.addSchemaEvents('invoice', ['invoice-paid', 'invoice-voided']);
    const altered = await db.alterSchema('invoice', { event: 'invoice-paid', add: ['amount', 'currency'] });
    expect(altered.events['invoice-paid']!.fields).toEqual(['amount', 'currency']);
    const removed = await db.removeSchemaEvent('invoice', 'invoice-voided');
    expect(Object.keys(removed.events).sort()).toEqual(['invoice-issued', 'invoice-paid']);
    expect((await db.listSchemas()).schemas.map((s) => s.aggregate)).toContain('invoice');
    expect(await db.getSchema('invoice')).toEqual(removed);
    expect((await db.getSchemaHistory('invoice')).map((s) => s.version)).toEqual([1, 2, 3, 4]);
    expect(await codeOf(db.getSchema('nothing'))).toBe('EDBX_ERR_SCHEMA_NOT_FOUND');
    expect(await codeOf(db.createSchema({ aggregate: 'invoice', events: ['x'] }))).toBe(
      'EDBX_ERR_SCHEMA_EXISTS',
    );
    const doctor = new EventDbxClient({ url: server.url, token: await token() });
    expect((await doctor.getSchema('invoice')).version).toBe(4);
    expect(await codeOf(doctor.createSchema({ aggregate: 'bill', events: ['x'] }))).toBe(
      'EDBX_ERR_GROUP_NOT_ALLOWED',
    );
  });

  it('typed auth errors: no token, unknown token, read-only, out of scope', async () => {
    const none = new EventDbxClient({ url: server.url, token: '' });
    expect(await codeOf(none.listAggregates())).toBe('EDBX_ERR_TOKEN_MISSING');
    const unknown = new EventDbxClient({ url: server.url, token: `edbx_${'A'.repeat(43)}` });
    expect(await codeOf(unknown.listAggregates())).toBe('EDBX_ERR_TOKEN_UNKNOWN');
    const reader = new EventDbxClient({ url: server.url, token: await token('--read-only') });
    expect((await reader.getAggregate('lab', 'l-1')).version).toBe(7);
    expect(await codeOf(reader.append('lab', 'l-1', { event_type: 'x', payload: {} }))).toBe(
      'EDBX_ERR_TOKEN_READ_ONLY',
    );
    const scoped = new EventDbxClient({ url: server.url, token: await token('--aggregate', 'lab') });
    expect(await codeOf(scoped.getAggregate('rx', 'r-1'))).toBe('EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    const seen = [];
    for await (const a of scoped.aggregates()) seen.push(a.aggregate_type);
    expect(new Set(seen)).toEqual(new Set(['lab']));
  });

  it('checkpoint, ledger consistency, and audit() with a pinned key and a trusted-checkpoint file', async () => {
    const pinned = await p.cli(['checkpoint', 'public-key', '--json']);
    expect(pinned.code).toBe(0);
    // Pinned out of band: the PEM the CLI prints.
    const publicKey = pinned.stdout.startsWith('{')
      ? (JSON.parse(pinned.stdout).public_key as string)
      : pinned.stdout.trim() + '\n';
    expect(publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const cp = await db.getCheckpoint();
    expect(cp).toMatchObject({ origin: 'eventdbx/ledger', key_name: 'eventdbx', public_key: publicKey });
    expect(cp.note.startsWith(`eventdbx/ledger\n${cp.size}\n`)).toBe(true);

    const file = path.join(p.dir, 'auditor', 'trusted.json');
    const auditor = new EventDbxClient({ url: server.url, token: server.adminToken, publicKey, trust: file });
    const first = await auditor.audit();
    expect(first.previous).toBeNull();
    expect(first.current.size).toBeGreaterThanOrEqual(cp.size);
    const saved1 = JSON.parse(await readFile(file, 'utf8'));
    expect(saved1).toMatchObject({ note: first.current.note, public_key: publicKey });

    for (let i = 0; i < 5; i++) await db.append('audit-me', 'a-1', { event_type: 'tick', payload: { i } });
    const second = await auditor.audit();
    expect(second.previous).toEqual({ size: first.current.size, root: first.current.root });
    expect(second.current.size).toBe(first.current.size + 5);
    expect(second.consistency_path.length).toBeGreaterThan(0);
    expect(JSON.parse(await readFile(file, 'utf8')).note).toBe(second.current.note);
    // Nothing new: the same checkpoint verifies again and stays trusted.
    const third = await auditor.audit();
    expect(third.current.size).toBe(second.current.size);

    const c = await db.getLedgerConsistency(first.current.size, second.current.size);
    expect(
      verifyConsistency(
        c.first,
        c.second,
        hex(first.current.root),
        hex(second.current.root),
        c.consistency_path.map(hex),
      ),
    ).toBe(true);
    expect(await codeOf(db.getLedgerConsistency(second.current.size + 1))).toBe(
      'EDBX_ERR_INVALID_PROOF_RANGE',
    );
    await expect(new EventDbxClient({ url: server.url, token: server.adminToken }).audit()).rejects.toThrow(
      EventDbxConfigError,
    );
  });

  it('verifyLedgerInclusion ties an event to an audited checkpoint, leaf = position - 1 (qa-sdk #10)', async () => {
    const pinned = await p.cli(['checkpoint', 'public-key', '--json']);
    const publicKey = pinned.stdout.startsWith('{')
      ? (JSON.parse(pinned.stdout).public_key as string)
      : pinned.stdout.trim() + '\n';
    const e = await db.append('ledger-link', 'l-1', { event_type: 'x', payload: { n: '1' } });
    const trust = new MemoryCheckpointStore();
    const auditor = new EventDbxClient({ url: server.url, token: server.adminToken, publicKey, trust });
    const { current } = await auditor.audit();
    const ok = await auditor.verifyLedgerInclusion(e, current);
    expect(ok).toEqual({
      event: e,
      leaf_hash: e.hash,
      leaf_index: e.position - 1,
      checkpoint: { size: current.size, root: current.root },
      checkpoint_verified: true,
    });
    const failed = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (x: { code?: string }) => x.code,
      );
    // Changed content, another root, a forged proof, and an event the checkpoint does not cover.
    expect(await failed(auditor.verifyLedgerInclusion({ ...e, payload: { n: '2' } }, current))).toBe(
      'EDBX_ERR_PROOF_INVALID',
    );
    expect(await failed(auditor.verifyLedgerInclusion(e, { size: current.size, root: e.merkle_root }))).toBe(
      'EDBX_ERR_PROOF_INVALID',
    );
    const forging = new EventDbxClient({
      url: server.url,
      token: server.adminToken,
      publicKey,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (!String(input).includes('/v1/ledger/proof')) return res;
        const proof = (await res.json()) as { audit_path: string[] };
        proof.audit_path[0] = 'f'.repeat(64);
        return new Response(JSON.stringify(proof), { status: 200, headers: res.headers });
      },
    });
    expect(await failed(forging.verifyLedgerInclusion(e, current))).toBe('EDBX_ERR_PROOF_INVALID');
    const newer = await db.append('ledger-link', 'l-1', { event_type: 'x', payload: { n: '3' } });
    expect(await failed(auditor.verifyLedgerInclusion(newer, current))).toBe('EDBX_ERR_CLIENT_CONFIG');
  });

  it('verifyLedgerInclusion verifies a signed checkpoint with the pinned key; a bare one is said unverified (qa-today2 #4)', async () => {
    const pinned = await p.cli(['checkpoint', 'public-key', '--json']);
    const publicKey = JSON.parse(pinned.stdout).public_key as string;
    const e = await db.append('ledger-link', 'l-2', { event_type: 'x', payload: { n: '1' } });
    const shown = await p.cli(['checkpoint', '--json']);
    expect(shown.code).toBe(0);
    const doc = JSON.parse(shown.stdout) as { checkpoint: CheckpointView };
    const cp = doc.checkpoint;
    const auditor = new EventDbxClient({ url: server.url, token: server.adminToken, publicKey });
    const refused = async (p: Promise<unknown>) => {
      const x = await rejection(p);
      expect(x).toBeInstanceOf(EventDbxClientError);
      return { code: (x as EventDbxClientError).code, message: (x as Error).message, x };
    };

    // The `.checkpoint` of `eventdbx checkpoint --json`: its note verified with the pinned key.
    expect(await auditor.verifyLedgerInclusion(e, cp)).toMatchObject({
      leaf_index: e.position - 1,
      checkpoint: { size: cp.size, root: cp.root },
      checkpoint_verified: true,
    });
    // A signature field that is not the note's, a note whose signature was replaced, a checkpoint
    // signed by another key, and a root that is not the signed one: refused, never resolved.
    const bogus = await refused(auditor.verifyLedgerInclusion(e, { ...cp, signature: 'AAAA' }));
    expect(bogus.x).toBeInstanceOf(EventDbxVerificationError);
    expect(bogus).toMatchObject({
      code: 'EDBX_ERR_INVALID_CHECKPOINT',
      message: "the checkpoint's signature disagrees with its signed note",
    });
    const zeros = Buffer.alloc(68).toString('base64');
    const replaced = { ...cp, note: cp.note.replace(cp.signature, zeros), signature: zeros };
    expect(await refused(auditor.verifyLedgerInclusion(e, replaced))).toMatchObject({
      code: 'EDBX_ERR_CHECKPOINT_SIGNATURE',
      message: 'the checkpoint signature does not verify with the pinned key',
    });
    const other = generateKeyPairSync('ed25519');
    const foreign = signCheckpoint(
      cp,
      cp.origin,
      cp.key_name,
      other.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      other.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      new Date(),
    );
    expect((await refused(auditor.verifyLedgerInclusion(e, foreign))).code).toBe(
      'EDBX_ERR_CHECKPOINT_SIGNATURE',
    );
    expect(await refused(auditor.verifyLedgerInclusion(e, { ...cp, root: e.merkle_root }))).toMatchObject({
      code: 'EDBX_ERR_INVALID_CHECKPOINT',
      message: "the checkpoint's root disagrees with its signed note",
    });
    expect(
      (
        await refused(
          auditor.verifyLedgerInclusion(e, { size: cp.size, root: cp.root, signature: cp.signature }),
        )
      ).code,
    ).toBe('EDBX_ERR_INVALID_CHECKPOINT');

    // The whole `--json` document: the message names `.checkpoint`.
    const whole = await refused(auditor.verifyLedgerInclusion(e, doc as never));
    expect(whole.code).toBe('EDBX_ERR_CLIENT_CONFIG');
    expect(whole.message).toMatch(/pass its `\.checkpoint`$/);

    // A bare { size, root } is taken as given, and the result says so.
    expect(await auditor.verifyLedgerInclusion(e, { size: cp.size, root: cp.root })).toMatchObject({
      checkpoint: { size: cp.size, root: cp.root },
      checkpoint_verified: false,
    });

    // No key pinned: a signed checkpoint is refused (not passed unchecked) ...
    const unpinned = new EventDbxClient({ url: server.url, token: server.adminToken });
    const nokey = await refused(unpinned.verifyLedgerInclusion(e, cp));
    expect(nokey.code).toBe('EDBX_ERR_CLIENT_CONFIG');
    expect(nokey.message).toMatch(/^the checkpoint is signed, but no public key is pinned/);
    // ... unless the trusted checkpoint saved a key (audit with trustOnFirstUse): that key verifies it.
    const tofuTrust = new MemoryCheckpointStore();
    const tofu = new EventDbxClient({ url: server.url, token: server.adminToken, trust: tofuTrust });
    await tofu.audit({ trustOnFirstUse: true });
    expect((await tofu.verifyLedgerInclusion(e, cp)).checkpoint_verified).toBe(true);
    expect((await refused(tofu.verifyLedgerInclusion(e, foreign))).code).toBe(
      'EDBX_ERR_CHECKPOINT_SIGNATURE',
    );
    // A pinned key other than the one the trusted checkpoint was verified with: refused as audit()
    // refuses it, whichever of the two would verify this checkpoint.
    const repinned = new EventDbxClient({
      url: server.url,
      token: server.adminToken,
      publicKey: other.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      trust: tofuTrust,
    });
    for (const checked of [cp, foreign]) {
      const mismatch = await refused(repinned.verifyLedgerInclusion(e, checked));
      expect(mismatch.x).toBeInstanceOf(EventDbxVerificationError);
      expect(mismatch.code).toBe('EDBX_ERR_TRUST_STORE');
    }
    expect((await refused(repinned.audit())).code).toBe('EDBX_ERR_TRUST_STORE');
  });

  it('plugin administration: list (secrets masked), status, dead letters, retry and replay, admin only', async () => {
    // The receiver refuses every event (400): after one attempt each is dead-lettered. (A receiver
    // that cannot be reached dead-letters nothing: it is retried until it is back.)
    const rx = await httpReceiver();
    onTestFinished(() => rx.close());
    rx.respond = () => 400;
    const add = await p.cli([
      'plugin',
      'http',
      '--endpoint',
      rx.url,
      '--header',
      'Authorization=Bearer topsecret',
      '--max-attempts',
      '1',
      '--backoff',
      '5',
    ]);
    expect(add.code).toBe(0);
    const e = await db.append('patient', 'plug-1', { event_type: 'patient-added', payload: { n: '1' } });

    const listed = await db.listPlugins();
    expect(listed.plugins.map((x) => x.name)).toContain('http');
    expect(JSON.stringify(listed)).not.toContain('topsecret');
    expect(listed.mappings).toHaveProperty('base');

    // The plugin backfills every event in the store: each fails once and is dead-lettered.
    const status = await waitFor('the backfill to be dead-lettered', async () => {
      const st = await db.pluginStatus();
      const http = st.plugins.find((x) => x.name === 'http');
      return http && http.lag === 0 ? st : undefined;
    });
    expect(status.running).toBe(true);
    const http = status.plugins.find((x) => x.name === 'http')!;
    expect(http).toMatchObject({ enabled: true, head: e.position });
    expect(http.dead_letters).toBeGreaterThanOrEqual(1);
    const first = await db.pluginDeadLetters('http', { take: 1 });
    expect(first).toMatchObject({ plugin: 'http', total: http.dead_letters });
    expect(first.dead_letters).toEqual([
      expect.objectContaining({ attempts: 1, code: 'EDBX_ERR_PLUGIN_DELIVERY' }),
    ]);
    const all = await db.pluginDeadLetters('http', { take: http.dead_letters });
    expect(all.dead_letters.at(-1)).toMatchObject({ position: e.position, aggregate_id: 'plug-1' });

    const retried = await db.retryPlugin('http');
    expect(retried).toMatchObject({ plugin: 'http', running: true, queued: 0 });
    expect(retried.outcome?.failed).toBe(retried.outcome?.retried);
    const replayed = await db.replayPlugin('http', e.position);
    expect(replayed).toMatchObject({ plugin: 'http', from: e.position, running: true });
    expect(replayed.cleared_dead_letters).toBeGreaterThanOrEqual(1);

    expect(await codeOf(db.pluginDeadLetters('nope'))).toBe('EDBX_ERR_PLUGIN_UNKNOWN');
    expect(await codeOf(db.replayPlugin('http', 0))).toBe('EDBX_ERR_INVALID_ARGUMENT');
    const staff = new EventDbxClient({ url: server.url, token: await token() });
    expect(await codeOf(staff.pluginStatus())).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
    expect(await codeOf(staff.retryPlugin('http'))).toBe('EDBX_ERR_GROUP_NOT_ALLOWED');
    expect((await p.cli(['plugin', 'http', '--disable'])).code).toBe(0);
  });
});
