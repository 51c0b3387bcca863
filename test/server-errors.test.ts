/**
 * The REST API's error classes, extras and lifecycle of issue 4, against a real server (the built CLI
 * on a real RocksDB data dir): problem+json with stable codes for 400/401/403/404/409/413, failed writes
 * that change nothing and cost nothing, pagination, single events with inclusion and consistency
 * proofs, atomic transactions, checkpoint, metrics, OpenAPI, graceful stop under load, and the daemon
 * lifecycle (start, status, second start, stop, stale PID file, destroy).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCheckpointSignature } from '../src/core/checkpoint.js';
import type { EventRecord } from '../src/core/event.js';
import { verifyConsistency, verifyInclusion } from '../src/core/merkle/verify.js';
import {
  type Project,
  type RunningServer,
  api,
  freePort,
  project,
  running,
  serverPid,
  startServer,
} from './helpers/cli.js';

type Res = Awaited<ReturnType<typeof api>>;

/** Assert an RFC 9457 problem with the registry's status and code. */
function problem(r: Res, status: number, code: string): void {
  expect({ status: r.status, code: r.body?.code }, JSON.stringify(r.body)).toEqual({ status, code });
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ status, title: code, type: expect.stringContaining(code) });
  expect(typeof r.body.detail).toBe('string');
}

async function tokenFor(p: Project, args: string[]): Promise<string> {
  const r = await p.cli(['token', 'generate', ...args, '--json']);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout).token.token as string;
}

async function remaining(p: Project, token: string): Promise<number | null> {
  const r = await p.cli(['token', 'list', '--json']);
  const t = (JSON.parse(r.stdout).tokens as Array<{ id: string; remaining: number | null }>).find(
    (x) => x.id === token.slice(0, 11),
  );
  return t!.remaining;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('REST API errors and extras', () => {
  let p: Project;
  let server: RunningServer;
  let url: string;
  let admin: string;
  let writer: string;
  let readOnly: string;
  let scoped: string;
  let limited: string;
  let expiring: string;
  let expiringAt: number;
  let revoked: string;

  const events = (type: string, id: string) => `${url}/v1/aggregates/${type}/${id}/events`;
  const post = (token: string, type: string, id: string, body: unknown, headers?: Record<string, string>) =>
    api(events(type, id), token, { body, ...(headers ? { headers } : {}) });
  const ledgerSize = async () => (await api(`${url}/health`, undefined)).body.events as number;

  beforeAll(async () => {
    p = await project();
    server = await startServer(p, ['--restrict=false']);
    url = server.url;
    admin = server.adminToken;
    // Tokens generated from the CLI (through the control socket) work in the very next request.
    writer = await tokenFor(p, ['--group', 'doctors', '--user', 'ann']);
    readOnly = await tokenFor(p, ['--group', 'auditors', '--user', 'aud', '--read-only']);
    scoped = await tokenFor(p, ['--group', 'auditors', '--user', 'sco', '--aggregate', 'patient/p-1']);
    limited = await tokenFor(p, ['--group', 'doctors', '--user', 'lim', '--limit', '3']);
    const exp = await p.cli([
      'token',
      'generate',
      '--group',
      'doctors',
      '--user',
      'exp',
      '--expiration',
      '1',
      '--json',
    ]);
    expiring = JSON.parse(exp.stdout).token.token;
    expiringAt = Date.parse(JSON.parse(exp.stdout).token.expires_at);
    revoked = await tokenFor(p, ['--group', 'doctors', '--user', 'rev']);
    await p.cli(['token', 'revoke', '--token', revoked]);
    expect(
      (await post(writer, 'patient', 'p-1', { event_type: 'patient-added', payload: { name: 'Jane' } }))
        .status,
    ).toBe(201);
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('400: bad names, bad payload values, unknown fields, malformed JSON, bad query values — with the limited token, costing nothing', async () => {
    const before = await ledgerSize();
    const cases: Array<[Promise<Res>, string]> = [
      [post(limited, 'Patient', 'p-1', { event_type: 'a', payload: {} }), 'EDBX_ERR_INVALID_AGGREGATE_TYPE'],
      [
        post(limited, 'patient', 'x'.repeat(129), { event_type: 'a', payload: {} }),
        'EDBX_ERR_INVALID_AGGREGATE_ID',
      ],
      [
        api(`${url}/v1/aggregates/patient/%E0%A4%A/events`, limited, {
          body: { event_type: 'a', payload: {} },
        }),
        'EDBX_ERR_INVALID_ARGUMENT',
      ],
      [
        api(`${url}/v1/aggregates/patient/${'%F0%9F%98%80'.repeat(129)}`, limited),
        'EDBX_ERR_INVALID_AGGREGATE_ID',
      ],
      [
        post(limited, 'patient', 'p-1', { event_type: 'Bad Type', payload: {} }),
        'EDBX_ERR_INVALID_EVENT_TYPE',
      ],
      [
        post(limited, 'patient', 'p-1', { event_type: 'a', payload: { 'bad\u0001name': 'x' } }),
        'EDBX_ERR_INVALID_FIELD_NAME',
      ],
      [
        post(limited, 'patient', 'p-1', { event_type: 'a', payload: { x: { nested: 1 } } }),
        'EDBX_ERR_INVALID_FIELD_VALUE',
      ],
      [
        post(limited, 'patient', 'p-1', { event_type: 'a', payload: { x: [1, 2] } }),
        'EDBX_ERR_INVALID_FIELD_VALUE',
      ],
      [
        post(limited, 'patient', 'p-1', { event_type: 'a', payload: { x: null } }),
        'EDBX_ERR_INVALID_FIELD_VALUE',
      ],
      [post(limited, 'patient', 'p-1', { event_type: 'a', payload: 'text' }), 'EDBX_ERR_INVALID_PAYLOAD'],
      [post(limited, 'patient', 'p-1', { event_type: 'a' }), 'EDBX_ERR_INVALID_ARGUMENT'],
      [
        post(limited, 'patient', 'p-1', { event_type: 'a', payload: {}, extra: 1 }),
        'EDBX_ERR_INVALID_ARGUMENT',
      ],
      [
        post(limited, 'patient', 'p-1', { event_type: 'a', payload: {}, expected_version: '1' }),
        'EDBX_ERR_INVALID_EXPECTED_VERSION',
      ],
      [
        post(limited, 'patient', 'p-1', { event_type: 'a', payload: {}, event_id: 'e'.repeat(129) }),
        'EDBX_ERR_INVALID_EVENT_ID',
      ],
      [post(limited, 'patient', 'p-1', '{"event_type": "a", "payload": {'), 'EDBX_ERR_INVALID_JSON'],
      [
        post(limited, 'patient', 'p-1', { event_type: 'a', payload: {} }, { 'if-match': 'soon' }),
        'EDBX_ERR_INVALID_EXPECTED_VERSION',
      ],
      [
        post(
          limited,
          'patient',
          'p-1',
          { event_type: 'a', payload: {}, expected_version: 1 },
          { 'if-match': '"2"' },
        ),
        'EDBX_ERR_INVALID_ARGUMENT',
      ],
      [
        post(limited, 'patient', 'p-1', { event_type: 'a', payload: {} }, { 'if-match': 'W/"0"' }),
        'EDBX_ERR_INVALID_ARGUMENT',
      ],
      [api(`${events('patient', 'p-1')}?take=0`, limited), 'EDBX_ERR_INVALID_ARGUMENT'],
      [api(`${events('patient', 'p-1')}?take=1001`, limited), 'EDBX_ERR_INVALID_ARGUMENT'],
      [api(`${events('patient', 'p-1')}?skip=-1`, limited), 'EDBX_ERR_INVALID_ARGUMENT'],
      [api(`${events('patient', 'p-1')}?cursor=not-a-cursor`, limited), 'EDBX_ERR_INVALID_ARGUMENT'],
      [api(`${events('patient', 'p-1')}?unknown=1`, limited), 'EDBX_ERR_INVALID_ARGUMENT'],
      [api(`${events('patient', 'p-1')}/zero`, limited), 'EDBX_ERR_INVALID_VERSION'],
      [api(`${url}/v1/aggregates/patient/p-1/consistency`, limited), 'EDBX_ERR_INVALID_PROOF_RANGE'],
      [api(`${url}/v1/aggregates?cursor=%%%`, limited), 'EDBX_ERR_INVALID_ARGUMENT'],
    ];
    for (const [r, code] of cases) problem(await r, 400, code);
    expect(await ledgerSize()).toBe(before);
    expect(await remaining(p, limited)).toBe(3);
  });

  it('accepts the longest valid aggregate ids (128 characters, also multi-byte) in the URL', async () => {
    for (const id of ['i'.repeat(128), '\u{1F600}'.repeat(128)]) {
      const r = await post(writer, 'patient', encodeURIComponent(id), { event_type: 'a', payload: {} });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(r.body.aggregate_id).toBe(id);
      const got = await api(`${url}/v1/aggregates/patient/${encodeURIComponent(id)}`, writer);
      expect(got.body.aggregate_id).toBe(id);
    }
  });

  it('authenticates before validating: an unauthenticated bad request is 401, not 400', async () => {
    problem(
      await api(`${url}/v1/transactions`, undefined, { body: { events: [] } }),
      401,
      'EDBX_ERR_TOKEN_MISSING',
    );
    problem(await api(events('Bad', 'x'), undefined, { body: '{not json' }), 401, 'EDBX_ERR_TOKEN_MISSING');
    problem(
      await api(`${events('patient', 'p-1')}?take=0`, `edbx_${'q'.repeat(43)}`),
      401,
      'EDBX_ERR_TOKEN_UNKNOWN',
    );
    problem(await api(`${url}/v1/nowhere`, undefined), 404, 'EDBX_ERR_ROUTE_NOT_FOUND');
  });

  it('401: missing, malformed, unknown, expired and revoked tokens, each with its own code', async () => {
    const target = `${url}/v1/aggregates`;
    problem(await api(target, undefined), 401, 'EDBX_ERR_TOKEN_MISSING');
    problem(
      await api(target, undefined, { headers: { authorization: 'Bearer nope' } }),
      401,
      'EDBX_ERR_TOKEN_MALFORMED',
    );
    problem(
      await api(target, undefined, { headers: { authorization: `Basic ${admin}` } }),
      401,
      'EDBX_ERR_TOKEN_MALFORMED',
    );
    problem(await api(target, `edbx_${'x'.repeat(43)}`), 401, 'EDBX_ERR_TOKEN_UNKNOWN');
    while (Date.now() <= expiringAt + 50) await sleep(50); // let the 1-second token lapse
    problem(await api(target, expiring), 401, 'EDBX_ERR_TOKEN_EXPIRED');
    problem(
      await post(expiring, 'patient', 'p-1', { event_type: 'a', payload: {} }),
      401,
      'EDBX_ERR_TOKEN_EXPIRED',
    );
    problem(await api(target, revoked), 401, 'EDBX_ERR_TOKEN_REVOKED');
    problem(
      await post(revoked, 'patient', 'p-1', { event_type: 'a', payload: {} }),
      401,
      'EDBX_ERR_TOKEN_REVOKED',
    );
    // Every endpoint but /health and /openapi.json needs a token.
    for (const path of ['/v1/checkpoint', '/metrics', '/v1/schemas', '/v1/aggregates/patient/p-1/verify'])
      problem(await api(`${url}${path}`, undefined), 401, 'EDBX_ERR_TOKEN_MISSING');
    problem(
      await api(`${url}/v1/transactions`, undefined, { body: { events: [] } }),
      401,
      'EDBX_ERR_TOKEN_MISSING',
    );
  });

  it('403: read-only, out of scope, archived aggregate, non-admin, exhausted', async () => {
    const before = await ledgerSize();
    problem(
      await post(readOnly, 'patient', 'p-1', { event_type: 'a', payload: {} }),
      403,
      'EDBX_ERR_TOKEN_READ_ONLY',
    );
    expect((await api(`${url}/v1/aggregates/patient/p-1`, readOnly)).status).toBe(200);
    problem(await api(`${url}/v1/aggregates/patient/p-2`, scoped), 403, 'EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    problem(await api(events('patient', 'p-2'), scoped), 403, 'EDBX_ERR_TOKEN_OUT_OF_SCOPE');
    problem(
      await post(scoped, 'patient', 'p-2', { event_type: 'a', payload: {} }),
      403,
      'EDBX_ERR_TOKEN_OUT_OF_SCOPE',
    );
    problem(
      await api(`${url}/v1/transactions`, scoped, {
        body: { events: [{ aggregate_type: 'patient', aggregate_id: 'p-2', event_type: 'a', payload: {} }] },
      }),
      403,
      'EDBX_ERR_TOKEN_OUT_OF_SCOPE',
    );
    expect((await api(`${url}/v1/aggregates/patient/p-1`, scoped)).status).toBe(200);
    // A scoped token lists only what it may read.
    expect((await post(writer, 'patient', 'p-2', { event_type: 'a', payload: {} })).status).toBe(201);
    const listed = await api(`${url}/v1/aggregates`, scoped);
    expect(listed.body.aggregates.map((a: { aggregate_id: string }) => a.aggregate_id)).toEqual(['p-1']);
    // Admin-only: schema management.
    problem(
      await api(`${url}/v1/schemas`, writer, { body: { aggregate: 'order', events: ['order-placed'] } }),
      403,
      'EDBX_ERR_GROUP_NOT_ALLOWED',
    );
    // Archived aggregates refuse appends.
    expect((await post(writer, 'ward', 'w-1', { event_type: 'opened', payload: {} })).status).toBe(201);
    const arch = await p.cli(['aggregate', 'archive', '--aggregate', 'ward', '--aggregate-id', 'w-1']);
    expect(arch.code, arch.stderr).toBe(0);
    const afterArchive = await ledgerSize();
    problem(
      await post(limited, 'ward', 'w-1', { event_type: 'a', payload: {} }),
      403,
      'EDBX_ERR_AGGREGATE_ARCHIVED',
    );
    expect((await api(`${url}/v1/aggregates/ward/w-1`, writer)).body.archived).toBe(true);
    expect(await ledgerSize()).toBe(afterArchive);
    expect(afterArchive).toBe(before + 3); // p-2, w-1 and the audit entry of the archive
    expect(await remaining(p, limited)).toBe(3);
  });

  it('404: unknown aggregate, route and version', async () => {
    problem(await api(`${url}/v1/aggregates/patient/nobody`, writer), 404, 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    problem(await api(events('patient', 'nobody'), writer), 404, 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    problem(
      await api(`${url}/v1/aggregates/patient/nobody/verify`, writer),
      404,
      'EDBX_ERR_AGGREGATE_NOT_FOUND',
    );
    problem(await api(`${events('patient', 'p-1')}/99`, writer), 404, 'EDBX_ERR_EVENT_NOT_FOUND');
    problem(await api(`${events('patient', 'p-1')}/99/proof`, writer), 404, 'EDBX_ERR_EVENT_NOT_FOUND');
    problem(await api(`${url}/v1/nothing-here`, writer), 404, 'EDBX_ERR_ROUTE_NOT_FOUND');
    // A path that exists, with a method it does not take: 405 with the methods it does.
    const wrong = await api(`${url}/v1/aggregates/patient/p-1`, writer, { method: 'DELETE' });
    problem(wrong, 405, 'EDBX_ERR_METHOD_NOT_ALLOWED');
    expect(wrong.headers.get('allow')).toBe('GET, HEAD');
    const put = await api(`${events('patient', 'p-1')}`, writer, { method: 'PUT', body: {} });
    problem(put, 405, 'EDBX_ERR_METHOD_NOT_ALLOWED');
    expect(put.headers.get('allow')).toBe('GET, HEAD, POST');
  });

  it('409: expected_version in the body and via If-Match; event_id reused for a different event', async () => {
    const before = await ledgerSize();
    const current = (await api(`${url}/v1/aggregates/patient/p-1`, writer)).body.version as number;
    problem(
      await post(limited, 'patient', 'p-1', { event_type: 'a', payload: {}, expected_version: current + 1 }),
      409,
      'EDBX_ERR_VERSION_CONFLICT',
    );
    problem(
      await post(
        limited,
        'patient',
        'p-1',
        { event_type: 'a', payload: {} },
        { 'if-match': `"${current - 1}"` },
      ),
      409,
      'EDBX_ERR_VERSION_CONFLICT',
    );
    problem(
      await post(limited, 'patient', 'p-new', { event_type: 'a', payload: {}, expected_version: 3 }),
      409,
      'EDBX_ERR_VERSION_CONFLICT',
    );
    expect(await ledgerSize()).toBe(before);
    expect(await remaining(p, limited)).toBe(3);
    problem(await api(`${url}/v1/aggregates/patient/p-new`, writer), 404, 'EDBX_ERR_AGGREGATE_NOT_FOUND');
    expect((await api(`${url}/v1/aggregates/patient/p-1`, writer)).body.version).toBe(current);
    // The right version is accepted, with an ETag of the new version.
    const okRes = await post(
      writer,
      'patient',
      'p-1',
      { event_type: 'a', payload: { n: '1' } },
      { 'if-match': `"${current}"` },
    );
    expect(okRes.status).toBe(201);
    expect(okRes.headers.get('etag')).toBe(`"${current + 1}"`);
    // GET of the state carries the same ETag, ready for the next If-Match.
    const state = await api(`${url}/v1/aggregates/patient/p-1`, writer);
    expect(state.headers.get('etag')).toBe(`"${current + 1}"`);
    // Idempotent retry returns the original (200); a different event under the same id is a conflict.
    const first = await post(writer, 'patient', 'p-1', {
      event_type: 'a',
      payload: { n: '2' },
      event_id: 'retry-1',
    });
    expect(first.status).toBe(201);
    const again = await post(writer, 'patient', 'p-1', {
      event_type: 'a',
      payload: { n: '2' },
      event_id: 'retry-1',
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const size = await ledgerSize();
    problem(
      await post(limited, 'patient', 'p-1', { event_type: 'a', payload: { n: '3' }, event_id: 'retry-1' }),
      409,
      'EDBX_ERR_EVENT_ID_CONFLICT',
    );
    problem(
      await post(limited, 'patient', 'p-9', { event_type: 'a', payload: { n: '2' }, event_id: 'retry-1' }),
      409,
      'EDBX_ERR_EVENT_ID_CONFLICT',
    );
    expect(await ledgerSize()).toBe(size);
    expect(await remaining(p, limited)).toBe(3);
  });

  it('413: body over the limit and payload over the limit; nothing written', async () => {
    const before = await ledgerSize();
    const huge = 'x'.repeat(1_100_000);
    problem(
      await post(limited, 'patient', 'p-1', { event_type: 'a', payload: { huge } }),
      413,
      'EDBX_ERR_BODY_TOO_LARGE',
    );
    const big = 'y'.repeat(300_000);
    problem(
      await post(limited, 'patient', 'p-1', { event_type: 'a', payload: { big } }),
      413,
      'EDBX_ERR_PAYLOAD_TOO_LARGE',
    );
    expect(await ledgerSize()).toBe(before);
    expect(await remaining(p, limited)).toBe(3);
  });

  it('a token limit is charged only for successful writes: after all refusals above, exactly 3 writes pass', async () => {
    for (let i = 0; i < 3; i++)
      expect((await post(limited, 'patient', 'lim', { event_type: 'a', payload: { i } })).status).toBe(201);
    problem(
      await post(limited, 'patient', 'lim', { event_type: 'a', payload: {} }),
      403,
      'EDBX_ERR_TOKEN_EXHAUSTED',
    );
    expect((await api(`${url}/v1/aggregates/patient/lim`, limited)).body.version).toBe(3);
  });

  it('paginates events with skip/take and an opaque cursor, with bounded pages', async () => {
    const batch = Array.from({ length: 150 }, (_, i) => ({
      aggregate_type: 'ledger',
      aggregate_id: 'big',
      event_type: 'entry',
      payload: { n: String(i + 1) },
    }));
    expect((await api(`${url}/v1/transactions`, writer, { body: { events: batch } })).status).toBe(201);
    const list = events('ledger', 'big');
    const first = await api(list, writer);
    expect(first.body.events).toHaveLength(100); // default page size
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page: Res = await api(`${list}?take=40${cursor ? `&cursor=${cursor}` : ''}`, writer);
      expect(page.status).toBe(200);
      expect(page.body.events.length).toBeLessThanOrEqual(40);
      seen.push(...page.body.events.map((e: EventRecord) => e.version));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    const window = await api(`${list}?skip=5&take=5`, writer);
    expect(window.body.events.map((e: EventRecord) => e.version)).toEqual([6, 7, 8, 9, 10]);
    const max = await api(`${list}?take=1000`, writer);
    expect(max.body.events).toHaveLength(150);
    expect(max.body.next_cursor).toBeNull();
    const recent = await api(`${list}/recent`, writer);
    expect(recent.body.events.map((e: EventRecord) => e.version)).toEqual(
      Array.from({ length: 10 }, (_, i) => 150 - i),
    );
    expect(
      (await api(`${list}/recent?take=3`, writer)).body.events.map((e: EventRecord) => e.version),
    ).toEqual([150, 149, 148]);
  });

  it('paginates the aggregate list with a cursor, without duplicates or gaps', async () => {
    const batch = Array.from({ length: 12 }, (_, i) => ({
      aggregate_type: 'room',
      aggregate_id: `r-${String(i).padStart(2, '0')}`,
      event_type: 'opened',
      payload: {},
    }));
    expect((await api(`${url}/v1/transactions`, writer, { body: { events: batch } })).status).toBe(201);
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Res = await api(
        `${url}/v1/aggregates?type=room&take=5${cursor ? `&cursor=${cursor}` : ''}`,
        writer,
      );
      expect(page.body.aggregates.length).toBeLessThanOrEqual(5);
      ids.push(...page.body.aggregates.map((a: { aggregate_id: string }) => a.aggregate_id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(ids).toEqual(batch.map((b) => b.aggregate_id));
    const skipped = await api(`${url}/v1/aggregates?type=room&skip=10&take=5`, writer);
    expect(skipped.body.aggregates.map((a: { aggregate_id: string }) => a.aggregate_id)).toEqual([
      'r-10',
      'r-11',
    ]);
    problem(await api(`${url}/v1/aggregates?take=1001`, writer), 400, 'EDBX_ERR_INVALID_ARGUMENT');
    // A cursor from before the type (made by hand, or from an unfiltered listing) does not widen it.
    const early = Buffer.from(JSON.stringify({ k: 'aaa/x' })).toString('base64url');
    const typed = await api(`${url}/v1/aggregates?type=room&take=1000&cursor=${early}`, writer);
    expect(new Set(typed.body.aggregates.map((a: { aggregate_type: string }) => a.aggregate_type))).toEqual(
      new Set(['room']),
    );
    const negative = Buffer.from(JSON.stringify({ v: -1 })).toString('base64url');
    problem(
      await api(`${url}/v1/aggregates/room/r-01/events?cursor=${negative}`, writer),
      400,
      'EDBX_ERR_INVALID_ARGUMENT',
    );
    // A scoped token pages through what it may see: skip and cursors count visible aggregates only.
    const rooms = await tokenFor(p, [
      '--group',
      'auditors',
      '--user',
      'rooms',
      '--aggregate',
      'room',
      '--read-only',
    ]);
    const scopedIds: string[] = [];
    cursor = null;
    do {
      const page: Res = await api(`${url}/v1/aggregates?take=5${cursor ? `&cursor=${cursor}` : ''}`, rooms);
      scopedIds.push(...page.body.aggregates.map((a: { aggregate_id: string }) => a.aggregate_id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(scopedIds).toEqual(batch.map((b) => b.aggregate_id));
    const scopedSkip = await api(`${url}/v1/aggregates?skip=10&take=5`, rooms);
    expect(scopedSkip.body.aggregates.map((a: { aggregate_id: string }) => a.aggregate_id)).toEqual([
      'r-10',
      'r-11',
    ]);
    const scopedFirst = await api(`${url}/v1/aggregates?skip=1&take=2`, rooms);
    expect(scopedFirst.body.aggregates.map((a: { aggregate_id: string }) => a.aggregate_id)).toEqual([
      'r-01',
      'r-02',
    ]);
  });

  it('serves single events with RFC 6962 inclusion proofs and consistency proofs that verify', async () => {
    const list = events('ledger', 'big');
    const all = (await api(`${list}?take=1000`, writer)).body.events as EventRecord[];
    for (const v of [1, 2, 7, 64, 100, 150]) {
      const e = await api(`${list}/${v}`, writer);
      expect(e.status).toBe(200);
      expect(e.body).toEqual(all[v - 1]);
      for (const treeSize of [undefined, v, 150].filter((s) => s === undefined || s >= v)) {
        const pr = await api(`${list}/${v}/proof${treeSize ? `?tree_size=${treeSize}` : ''}`, writer);
        expect(pr.status).toBe(200);
        const size = treeSize ?? 150;
        expect(pr.body).toMatchObject({ leaf_index: v - 1, tree_size: size, leaf_hash: all[v - 1]!.hash });
        expect(pr.body.root).toBe(all[size - 1]!.merkle_root);
        const ok = verifyInclusion(
          Buffer.from(pr.body.leaf_hash, 'hex'),
          pr.body.leaf_index,
          pr.body.tree_size,
          pr.body.audit_path.map((h: string) => Buffer.from(h, 'hex')),
          Buffer.from(all[size - 1]!.merkle_root, 'hex'),
        );
        expect(ok).toBe(true);
      }
    }
    problem(await api(`${list}/3/proof?tree_size=2`, writer), 400, 'EDBX_ERR_INVALID_PROOF_RANGE');
    for (const [m, n] of [
      [1, 150],
      [3, 7],
      [64, 150],
      [100, 101],
      [150, 150],
    ] as const) {
      const c = await api(`${url}/v1/aggregates/ledger/big/consistency?from=${m}&to=${n}`, writer);
      expect(c.status).toBe(200);
      expect(c.body).toMatchObject({ first: m, second: n });
      const ok = verifyConsistency(
        m,
        n,
        Buffer.from(all[m - 1]!.merkle_root, 'hex'),
        Buffer.from(all[n - 1]!.merkle_root, 'hex'),
        c.body.consistency_path.map((h: string) => Buffer.from(h, 'hex')),
      );
      expect(ok).toBe(true);
    }
    const open = await api(`${url}/v1/aggregates/ledger/big/consistency?from=10`, writer);
    expect(open.body).toMatchObject({ first: 10, second: 150 });
    problem(
      await api(`${url}/v1/aggregates/ledger/big/consistency?from=9&to=3`, writer),
      400,
      'EDBX_ERR_INVALID_PROOF_RANGE',
    );
    const verify = await api(`${url}/v1/aggregates/ledger/big/verify`, writer);
    expect(verify.body).toMatchObject({ ok: true, version: 150 });
  });

  it('POST /v1/transactions is atomic: one bad event and nothing is written', async () => {
    const before = await ledgerSize();
    const good = (id: string) => ({
      aggregate_type: 'account',
      aggregate_id: id,
      event_type: 'opened',
      payload: { by: 'tx' },
    });
    const refusals: Array<[unknown[], number, string]> = [
      [[good('a-1'), { ...good('a-2'), expected_version: 4 }], 409, 'EDBX_ERR_VERSION_CONFLICT'],
      [[good('a-1'), { ...good('a-2'), payload: { 'bad\u0000': 'x' } }], 400, 'EDBX_ERR_INVALID_FIELD_NAME'],
      [[good('a-1'), { ...good('A-2'), aggregate_type: 'Account' }], 400, 'EDBX_ERR_INVALID_AGGREGATE_TYPE'],
      [[good('a-1'), { ...good('w-1'), aggregate_type: 'ward' }], 403, 'EDBX_ERR_AGGREGATE_ARCHIVED'],
      [
        [
          { ...good('a-1'), event_id: 'same' },
          { ...good('a-2'), event_id: 'same' },
        ],
        400,
        'EDBX_ERR_DUPLICATE_EVENT_ID',
      ],
      [
        [good('a-1'), { ...good('a-2'), payload: { big: 'z'.repeat(300_000) } }],
        413,
        'EDBX_ERR_PAYLOAD_TOO_LARGE',
      ],
    ];
    for (const [evs, status, code] of refusals)
      problem(await api(`${url}/v1/transactions`, writer, { body: { events: evs } }), status, code);
    problem(
      await api(`${url}/v1/transactions`, writer, { body: { events: [] } }),
      400,
      'EDBX_ERR_EMPTY_TRANSACTION',
    );
    expect(await ledgerSize()).toBe(before);
    problem(await api(`${url}/v1/aggregates/account/a-1`, writer), 404, 'EDBX_ERR_AGGREGATE_NOT_FOUND');

    const done = await api(`${url}/v1/transactions`, writer, {
      body: {
        events: [
          good('a-1'),
          good('a-2'),
          { ...good('a-1'), event_type: 'credited', payload: { amount: 5 } },
        ],
      },
    });
    expect(done.status).toBe(201);
    const recs = done.body.events as EventRecord[];
    expect(recs.map((e) => [e.aggregate_id, e.version])).toEqual([
      ['a-1', 1],
      ['a-2', 1],
      ['a-1', 2],
    ]);
    expect(recs.map((e) => e.position)).toEqual([before + 1, before + 2, before + 3]);
    expect(recs.every((e) => e.metadata.issued_by.user === 'ann')).toBe(true);
  });

  it('GET /v1/checkpoint returns a signed note of the current ledger that verifies with its public key', async () => {
    const c = await api(`${url}/v1/checkpoint`, readOnly);
    expect(c.status).toBe(200);
    expect(c.body.size).toBe(await ledgerSize());
    expect(c.body.note.split('\n')[1]).toBe(String(c.body.size));
    expect(verifyCheckpointSignature(c.body.note, c.body.public_key)).toBe(true);
    expect(
      verifyCheckpointSignature(
        c.body.note.replace(`\n${c.body.size}\n`, `\n${c.body.size + 1}\n`),
        c.body.public_key,
      ),
    ).toBe(false);
    const cli = await p.cli(['checkpoint', 'public-key']);
    expect(cli.stdout).toBe(c.body.public_key);
  });

  it('GET /metrics is Prometheus text with request, append and fsync counters', async () => {
    const m = await api(`${url}/metrics`, readOnly);
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = m.body as string;
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    expect(text).toMatch(/# TYPE eventdbx_http_requests_total counter/);
    expect(
      value(
        /eventdbx_http_requests_total\{method="POST",route="\/v1\/aggregates\/:aggregate_type\/:aggregate_id\/events",status="201"\} (\d+)/,
      ),
    ).toBeGreaterThan(3);
    expect(value(/eventdbx_http_requests_total\{[^}]*status="401"\} (\d+)/)).toBeGreaterThan(0);
    expect(text).toMatch(/eventdbx_http_request_duration_seconds_bucket\{/);
    const appends = value(/^eventdbx_appends_total (\d+)/m);
    const batches = value(/^eventdbx_fsync_batches_total (\d+)/m);
    expect(appends).toBeGreaterThan(150);
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThanOrEqual(appends);
    expect(value(/^eventdbx_events (\d+)/m)).toBe(await ledgerSize());
  });

  it('GET /openapi.json documents every route, with its responses and bearer security', async () => {
    const doc = await api(`${url}/openapi.json`, undefined);
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toMatch(/^3\./);
    const paths = doc.body.paths as Record<string, Record<string, { responses?: Record<string, unknown> }>>;
    const expected: Array<[string, string]> = [
      ['get', '/health'],
      ['get', '/metrics'],
      ['get', '/v1/aggregates'],
      ['get', '/v1/aggregates/{aggregate_type}/{aggregate_id}'],
      ['get', '/v1/aggregates/{aggregate_type}/{aggregate_id}/events'],
      ['post', '/v1/aggregates/{aggregate_type}/{aggregate_id}/events'],
      ['get', '/v1/aggregates/{aggregate_type}/{aggregate_id}/events/recent'],
      ['get', '/v1/aggregates/{aggregate_type}/{aggregate_id}/events/{version}'],
      ['get', '/v1/aggregates/{aggregate_type}/{aggregate_id}/events/{version}/proof'],
      ['get', '/v1/aggregates/{aggregate_type}/{aggregate_id}/consistency'],
      ['get', '/v1/aggregates/{aggregate_type}/{aggregate_id}/verify'],
      ['post', '/v1/transactions'],
      ['get', '/v1/checkpoint'],
      ['get', '/v1/audit'],
      ['get', '/v1/audit/verify'],
      ['get', '/v1/schemas'],
      ['get', '/v1/schemas/{aggregate}'],
    ];
    for (const [method, path] of expected) {
      expect(paths[path]?.[method], `${method.toUpperCase()} ${path}`).toBeDefined();
    }
    // Secured routes document their 401; every documented operation is a real route with a success response.
    for (const [method, path] of expected) {
      if (path !== '/health')
        expect(paths[path]![method]!.responses, `${method} ${path}`).toHaveProperty('401');
    }
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(
          Object.keys(op.responses ?? {}).some((s) => /^2/.test(s)),
          `${method} ${path} responses`,
        ).toBe(true);
        const concrete = path.replace(/\{[^}]+\}/g, (m) => (m === '{version}' ? '1' : 'x'));
        const res = await fetch(`${url}${concrete}`, {
          method: method.toUpperCase(),
          headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/json' },
          ...(method === 'get' || method === 'delete' ? {} : { body: '{}' }),
        });
        // Streams never end: read a body only when it is a problem document.
        const body = res.headers.get('content-type')?.startsWith('application/problem+json')
          ? ((await res.json()) as { code: string })
          : (await res.body?.cancel(), undefined);
        expect(body?.code, `${method} ${path}`).not.toBe('EDBX_ERR_ROUTE_NOT_FOUND');
        // Error answers are declared as sent: problem+json, with the statuses the route really answers.
        if (res.status >= 400)
          expect(Object.keys(op.responses ?? {}), `${method} ${path}`).toContain(String(res.status));
        for (const [status, declared] of Object.entries(op.responses ?? {})) {
          // /health's 503 is also its own health answer (`status: "failing"`, qa2-ops #2).
          const own = path === '/health' && status === '503' ? ['application/json'] : [];
          if (Number(status) >= 400)
            expect(
              Object.keys((declared as { content?: object }).content ?? {}),
              `${method} ${path} ${status}`,
            ).toEqual(['application/problem+json', ...own]);
        }
      }
    }
    expect(doc.body.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(paths['/v1/aggregates/{aggregate_type}/{aggregate_id}/events']!.post!.responses).toHaveProperty(
      '409',
    );
  });
});

describe('graceful stop under load', () => {
  it('loses no acknowledged event when stopped (SIGTERM) with many appenders in flight', async () => {
    const p = await project();
    try {
      let server = await startServer(p, ['--restrict=false']);
      const token = server.adminToken;
      const acked: EventRecord[] = [];
      const failures = new Map<string, number>();
      let stopping = false;
      const worker = async (w: number) => {
        for (let i = 0; ; i++) {
          try {
            const r = await api(`${server.url}/v1/aggregates/load/w-${w % 16}/events`, token, {
              body: { event_type: 'tick', payload: { w, i } },
            });
            if (r.status === 201) acked.push(r.body as EventRecord);
            else {
              const key = `${r.status} ${r.body?.code ?? ''}`;
              failures.set(key, (failures.get(key) ?? 0) + 1);
              if (stopping) return;
            }
          } catch {
            if (stopping) return; // connection refused / reset once the server is gone
            throw new Error('request failed before the stop');
          }
        }
      };
      const workers = Array.from({ length: 48 }, (_, w) => worker(w));
      while (acked.length < 400) await sleep(10);
      stopping = true;
      const code = await server.stop();
      await Promise.all(workers);
      expect(code).toBe(0);
      // Refusals during the drain are 503 (shutting down), never a failed write.
      for (const key of failures.keys()) expect(key).toMatch(/^503/);
      expect(existsSync(path.join(p.dataDir, 'eventdbx.pid'))).toBe(false);

      server = await startServer(p, ['--restrict=false']);
      try {
        const reader = await tokenFor(p, ['--group', 'auditors', '--user', 'check', '--read-only']);
        const byAggregate = new Map<string, EventRecord[]>();
        for (let a = 0; a < 16; a++) {
          const r = await api(`${server.url}/v1/aggregates/load/w-${a}/events?take=1000`, reader);
          byAggregate.set(`w-${a}`, r.status === 200 ? r.body.events : []);
        }
        const missing = acked.filter((e) => {
          const stored = byAggregate.get(e.aggregate_id)?.[e.version - 1];
          return !stored || stored.hash !== e.hash;
        });
        expect(missing).toEqual([]);
        for (let a = 0; a < 16; a++) {
          const v = await api(`${server.url}/v1/aggregates/load/w-${a}/verify`, reader);
          if (v.status === 200) expect(v.body.ok).toBe(true);
        }
      } finally {
        await server.stop();
      }
    } finally {
      await p.cleanup();
    }
  });
});

describe('daemon lifecycle', () => {
  let p: Project;
  const pidOf = () => serverPid(p.dataDir);
  beforeAll(async () => {
    p = await project();
  });
  afterAll(async () => {
    const pid = await pidOf();
    if (pid && running(pid)) process.kill(pid, 'SIGKILL');
    await p.cleanup();
  });

  it('`status` says clearly when nothing runs', async () => {
    const r = await p.cli(['status']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/not running/);
    const j = await p.cli(['status', '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ running: false });
  });

  it('`start` daemonises, returns once serving with port and PID; `status` sees it; a second `start` refuses', async () => {
    const port = await freePort();
    const r = await p.cli(['start', '--port', String(port), '--restrict=false']);
    expect(r.code, r.stderr).toBe(0);
    const m = /started: pid (\d+), port (\d+)/.exec(r.stdout);
    expect(m).not.toBeNull();
    const pid = Number(m![1]);
    expect(Number(m![2])).toBe(port);
    expect(running(pid)).toBe(true);
    expect(await pidOf()).toBe(pid);
    // Accepting requests as soon as `start` returned.
    expect((await api(`http://127.0.0.1:${port}/health`, undefined)).status).toBe(200);
    expect(existsSync(path.join(p.dataDir, 'eventdbx.log'))).toBe(true);

    const s = await p.cli(['status', '--json']);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({
      running: true,
      pid,
      port,
      restrict: 'false',
      version: expect.any(String),
      events: expect.any(Number),
      uptime_seconds: expect.any(Number),
    });
    const human = await p.cli(['status']);
    expect(human.stdout).toMatch(/pid\s+\d+/);

    const second = await p.cli(['start', '--port', String(await freePort())]);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('EDBX_ERR_ALREADY_RUNNING');
    expect(running(pid)).toBe(true);
    expect(await pidOf()).toBe(pid);
  });

  it('`stop` stops it gracefully and removes the PID file and socket', async () => {
    const pid = (await pidOf())!;
    const r = await p.cli(['stop']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`stopped server ${pid}`);
    expect(running(pid)).toBe(false);
    expect(existsSync(path.join(p.dataDir, 'eventdbx.pid'))).toBe(false);
    expect(existsSync(path.join(p.dataDir, 'control.sock'))).toBe(false);
    expect((await p.cli(['stop'])).stdout).toMatch(/no server is running/);
  });

  it('`start` says why and exits non-zero when the server cannot start (port taken)', async () => {
    const blocker = net.createServer();
    const port = await new Promise<number>((resolve) =>
      blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as net.AddressInfo).port)),
    );
    // With a plugin configured, the foreground server used to keep running (its delivery loop) after
    // saying the port was taken, and the daemon left that process behind.
    expect((await p.cli(['plugin', 'json', '--path', path.join(p.dir, 'out.jsonl')])).code).toBe(0);
    try {
      for (const args of [['start'], ['start', '--foreground']]) {
        const r = await p.cli([...args, '--port', String(port)]);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toMatch(/port \d+ on 127\.0\.0\.1 is already in use.*\[EDBX_ERR_PORT_IN_USE\]/);
        expect(await pidOf()).toBeUndefined();
      }
      // Nothing holds the data dir: the CLI opens the store directly at once.
      expect((await p.cli(['aggregate', 'list'])).code).toBe(0);
    } finally {
      blocker.close();
      await p.cli(['plugin', 'remove', 'json']);
    }
  });

  it('detects and cleans a stale PID file', async () => {
    const dead = await new Promise<number>((resolve) => {
      const c = spawn(process.execPath, ['-e', '0']);
      c.on('exit', () => resolve(c.pid!));
    });
    await writeFile(
      path.join(p.dataDir, 'eventdbx.pid'),
      JSON.stringify({
        pid: dead,
        port: 1,
        started_at: new Date().toISOString(),
        restrict: 'true',
        version: 'x',
        data_dir: p.dataDir,
      }),
    );
    await writeFile(path.join(p.dataDir, 'control.sock'), '');
    const s = await p.cli(['status']);
    expect(s.code).toBe(1);
    expect(s.stdout).toMatch(/not running/);
    expect(existsSync(path.join(p.dataDir, 'eventdbx.pid'))).toBe(false);
    // A CLI command works on the store directly again (the stale socket is gone too).
    const apply = await p.cli(['aggregate', 'list']);
    expect(apply.code, apply.stderr).toBe(0);
    // And a new server starts, its log saying how the previous one ended.
    const port = await freePort();
    const r = await p.cli(['start', '--port', String(port)]);
    expect(r.code, r.stderr).toBe(0);
    const log = await readFile(path.join(p.dataDir, 'eventdbx.log'), 'utf8');
    const warned = log.split('\n').filter((l) => l.includes('ended without a clean stop'));
    expect(warned).toHaveLength(1);
    expect(JSON.parse(warned[0]!)).toMatchObject({ level: 40, previous_pid: dead });
    expect(existsSync(path.join(p.dataDir, 'eventdbx.pid.unclean'))).toBe(false);
  });

  it('never signals a process that took over the PID of a server killed with -9', async () => {
    // A live process that is not the server, with the PID file of a server started at another time.
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const dataDir = path.join(p.dir, 'reused');
    await mkdir(dataDir, { recursive: true });
    try {
      await writeFile(
        path.join(dataDir, 'eventdbx.pid'),
        JSON.stringify({
          pid: other.pid,
          port: 1,
          started_at: new Date().toISOString(),
          restrict: 'true',
          version: 'x',
          data_dir: dataDir,
          process_start: '1',
        }),
      );
      const stopped = await p.cli(['stop', '--data-dir', dataDir]);
      expect(stopped.stdout).toMatch(/no server is running/);
      expect(other.exitCode).toBeNull();
      expect(other.signalCode).toBeNull();
      expect(existsSync(path.join(dataDir, 'eventdbx.pid'))).toBe(false);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('`destroy` refuses without a terminal unless --yes, then stops the server and removes data dir and config', async () => {
    const pid = (await pidOf())!;
    const refused = await p.cli(['destroy']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--yes/);
    expect(running(pid)).toBe(true);
    expect(existsSync(p.dataDir)).toBe(true);
    expect(existsSync(p.configPath)).toBe(true);

    const r = await p.cli(['destroy', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(running(pid)).toBe(false);
    expect(existsSync(p.dataDir)).toBe(false);
    expect(existsSync(p.configPath)).toBe(false);
    // The configuration named by EVENTDBX_CONFIG went with it: `status` says so (qa-spec #2).
    const s = await p.cli(['status']);
    expect([s.code, s.stderr]).toEqual([
      1,
      `error: no configuration at ${p.configPath}: create one with \`eventdbx config --master-key <secret> --dek <secret>\` [EDBX_ERR_CONFIG_MISSING]\n`,
    ]);
  });
});
