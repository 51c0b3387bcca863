/**
 * What the SDK makes of answers and arguments it cannot use (QA qa4-sdk #2, #3, #4): a 2xx answer of
 * the wrong shape is `EDBX_ERR_UNEXPECTED_RESPONSE` naming what is wrong, never a resolved value or a
 * bare TypeError; /health's 503 "failing" is a health answer, not an unavailable server; and a bad
 * argument rejects the returned promise (or the iterator's first `next()`), never throws at the call.
 * A local HTTP server on 127.0.0.1 plays whatever answers the server should not give; a real
 * in-process server (in-memory engine with an injected write fault) gives the failing health.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventDbxClient,
  EventDbxClientError,
  EventDbxResponseError,
  MemoryCheckpointStore,
} from '../../src/client/index.js';
import { err } from '../../src/core/errors.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { freePort } from '../helpers/cli.js';
import { post, testServer } from '../helpers/http.js';
import { answeredRecord, signer } from './fake.js';
import { rejection } from './checks.js';

const record = answeredRecord;

describe('a 2xx answer of the wrong shape is EDBX_ERR_UNEXPECTED_RESPONSE (qa4-sdk #2)', () => {
  let server: http.Server;
  let db: EventDbxClient;
  /** What the server answers next: status and JSON text (an SSE stream for the stream route). */
  let answer = { status: 200, text: '{"hello":"world"}' };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url!.startsWith('/v1/events/stream')) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end(`id: 0\n\nid: 1\nevent: event\ndata: ${answer.text}\n\n`);
          return;
        }
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(answer.text);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    db = new EventDbxClient({ url, token: 't', retry: false });
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  async function unexpected(call: () => Promise<unknown>, status: number, text: string): Promise<string> {
    answer = { status, text };
    const e = await rejection(call());
    expect(e).toBeInstanceOf(EventDbxResponseError);
    expect(e).toMatchObject({ code: 'EDBX_ERR_UNEXPECTED_RESPONSE', status });
    expect((e as Error).message).not.toContain('\n');
    return (e as Error).message;
  }

  it('names what is wrong: a missing field, a wrong type, null, a bad record inside a list', async () => {
    const append = () => db.append('patient', 'p-1', { event_type: 'admitted', payload: {} });
    expect(await unexpected(append, 201, '{"hello":"world"}')).toBe(
      'POST /v1/aggregates/patient/p-1/events answered HTTP 201 with something other than an EventRecord: aggregate_type is missing',
    );
    expect(await unexpected(append, 201, 'null')).toMatch(/EventRecord: the answer is null, not an object$/);
    expect(await unexpected(append, 200, JSON.stringify({ ...record, version: '1' }))).toMatch(
      /: version is a string, not a number$/,
    );
    const { issued_by: _, ...metadata } = record.metadata;
    expect(await unexpected(append, 201, JSON.stringify({ ...record, metadata }))).toMatch(
      /: metadata\.issued_by is missing$/,
    );
    const tx = () =>
      db.transaction([{ aggregate_type: 'patient', aggregate_id: 'p-1', event_type: 'x', payload: {} }]);
    expect(await unexpected(tx, 201, '{"hello":"world"}')).toMatch(/transaction result: events is missing$/);
    expect(
      await unexpected(
        () => db.recentEvents('patient', 'p-1'),
        200,
        JSON.stringify({ events: [record, { ...record, position: null }] }),
      ),
    ).toMatch(/: events\[1\]\.position is null, not a number$/);
    expect(await unexpected(() => db.getAggregate('patient', 'p-1'), 200, '{"hello":"world"}')).toMatch(
      /an AggregateView: aggregate_type is missing$/,
    );
    expect(await unexpected(() => db.health(), 200, '{"status":"ok"}')).toMatch(/: version is missing$/);
    expect(await unexpected(() => db.health(), 200, '{"status":"down","version":"1"}')).toMatch(
      /: status is "down", not "ok"$/,
    );
  });

  it('checks the answer of every method that returns one, paging iterators included', async () => {
    const calls: Record<string, () => Promise<unknown>> = {
      openApi: () => db.openApi(),
      listAggregates: () => db.listAggregates(),
      aggregates: () => db.aggregates().next(),
      getAggregate: () => db.getAggregate('patient', 'p-1'),
      listEvents: () => db.listEvents('patient', 'p-1'),
      events: () => db.events('patient', 'p-1').next(),
      recentEvents: () => db.recentEvents('patient', 'p-1'),
      getEvent: () => db.getEvent('patient', 'p-1', 1),
      getEventProof: () => db.getEventProof('patient', 'p-1', 1),
      getAggregateConsistency: () => db.getAggregateConsistency('patient', 'p-1', 1, 2),
      verifyAggregate: () => db.verifyAggregate('patient', 'p-1'),
      append: () => db.append('patient', 'p-1', { event_type: 'x', payload: {} }),
      transaction: () => db.transaction([]),
      listSchemas: () => db.listSchemas(),
      schemas: () => db.schemas().next(),
      getSchema: () => db.getSchema('patient'),
      getSchemaHistory: () => db.getSchemaHistory('patient'),
      createSchema: () => db.createSchema({ aggregate: 'patient', events: ['x'] }),
      addSchemaEvents: () => db.addSchemaEvents('patient', ['y']),
      alterSchema: () => db.alterSchema('patient', { lock: true }),
      removeSchemaEvent: () => db.removeSchemaEvent('patient', 'y'),
      listTokens: () => db.listTokens(),
      tokens: () => db.tokens().next(),
      createToken: () => db.createToken({ group: 'g', user: 'u' }),
      revokeToken: () => db.revokeToken('t'),
      refreshToken: () => db.refreshToken('t', { limit: 1 }),
      auditLog: () => db.auditLog(),
      verifyAuditLog: () => db.verifyAuditLog(),
      listPlugins: () => db.listPlugins(),
      pluginStatus: () => db.pluginStatus(),
      pluginDeadLetters: () => db.pluginDeadLetters('log'),
      replayPlugin: () => db.replayPlugin('log'),
      retryPlugin: () => db.retryPlugin('log'),
      getCheckpoint: () => db.getCheckpoint(),
      getLedgerConsistency: () => db.getLedgerConsistency(1, 2),
      getLedgerProof: () => db.getLedgerProof(1),
      health: () => db.health(),
      subscribe: () => db.subscribe({ from: 1 }).next(),
    };
    for (const [name, call] of Object.entries(calls)) {
      for (const text of ['{"hello":"world"}', 'null', '[]', '"text"']) {
        answer = { status: 200, text };
        const e = await rejection(call());
        expect(e, `${name} answered ${text}`).toBeInstanceOf(EventDbxResponseError);
        expect((e as Error).message, name).toMatch(/missing|not an object/);
      }
    }
    // The verifiers check every field themselves: a falsified answer of any shape does not verify.
    answer = { status: 200, text: '{"hello":"world"}' };
    expect(await rejection(db.verifyEvent('patient', 'p-1', 1))).toMatchObject({
      code: 'EDBX_ERR_PROOF_INVALID',
    });
    const auditing = new EventDbxClient({
      url: db.url,
      token: 't',
      retry: false,
      trust: new MemoryCheckpointStore(),
    });
    expect(await rejection(auditing.audit({ trustOnFirstUse: true }))).toMatchObject({
      code: 'EDBX_ERR_CLIENT_CONFIG',
    });
    answer = { status: 200, text: 'null' };
    expect(
      await rejection(
        new EventDbxClient({
          url: db.url,
          publicKey: signer().publicKeyPem,
          trust: new MemoryCheckpointStore(),
        }).audit(),
      ),
    ).toMatchObject({ code: 'EDBX_ERR_INVALID_CHECKPOINT' });
  });

  it('the stream: an event that is not an EventRecord ends the iteration with the error', async () => {
    answer = { status: 200, text: JSON.stringify({ ...record, position: '1' }) };
    const e = await rejection(db.subscribe({ from: 1, maxAttempts: 1 }).next());
    expect(e).toBeInstanceOf(EventDbxResponseError);
    expect((e as Error).message).toBe(
      'the stream sent an event that is not an EventRecord: position is a string, not a number',
    );
  });
});

describe('health() of a server whose writes failed returns the failing answer (qa4-sdk #3)', () => {
  it('status "failing" with the code and detail, from the first answer, not retried', async () => {
    const engine = new MemoryEngine();
    const s = await testServer({ engine });
    try {
      let calls = 0;
      const counting: typeof fetch = (input, init) => {
        calls++;
        return fetch(input, init);
      };
      const db = new EventDbxClient({ url: s.url, fetch: counting });
      expect(await db.health()).toMatchObject({ status: 'ok', version: 'test', restrict: 'false' });
      engine.faultNextWrite(err('EDBX_ERR_STORE_IO', { reason: 'No space left on device' }));
      expect(
        (await post(s, '/v1/aggregates/patient/p-1/events', { event_type: 'x', payload: {} })).status,
      ).toBe(500);
      calls = 0;
      const h = await db.health();
      expect(calls).toBe(1);
      expect(h).toMatchObject({
        status: 'failing',
        version: 'test',
        restrict: 'false',
        code: 'EDBX_ERR_STORE_IO',
      });
      expect(typeof h.uptime_seconds).toBe('number');
      // The type says which fields a failing answer has.
      if (h.status !== 'failing') throw new Error('not failing');
      expect(h.detail).toContain("the server's log has the cause");
      expect(h.detail).toContain('eventdbx restart');
    } finally {
      await s.close();
    }
  });
});

describe('a bad argument rejects, it never throws where the method is called (qa4-sdk #4)', () => {
  it('every public method returns a rejected promise, or an iterator whose first next() rejects', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const db = new EventDbxClient({ url, token: 't', retry: false });
    const S = 'p-\ud800'; // a lone surrogate: cannot be put in a URL
    const big = { n: 1n } as unknown as Record<string, string>; // cannot be sent as JSON
    const stopped = { signal: AbortSignal.abort(new Error('stopped')) };
    const CONFIG = 'EDBX_ERR_CLIENT_CONFIG';
    const calls: Record<string, [() => unknown, string]> = {
      health: [() => db.health(stopped), 'stopped'],
      metrics: [() => db.metrics(stopped), 'stopped'],
      openApi: [() => db.openApi(stopped), 'stopped'],
      listAggregates: [() => db.listAggregates({ type: S }), CONFIG],
      aggregates: [() => db.aggregates({ type: S }), CONFIG],
      getAggregate: [() => db.getAggregate('patient', S), CONFIG],
      listEvents: [() => db.listEvents(S, 'p-1'), CONFIG],
      events: [() => db.events('patient', 'p-1', { fromVersion: 0 }), CONFIG],
      recentEvents: [() => db.recentEvents('patient', S), CONFIG],
      getEvent: [() => db.getEvent('patient', 'p-1', 0), CONFIG],
      getEventProof: [() => db.getEventProof('patient', 'p-1', 0), CONFIG],
      getAggregateConsistency: [() => db.getAggregateConsistency('patient', S, 1), CONFIG],
      verifyAggregate: [() => db.verifyAggregate('patient', S), CONFIG],
      append: [() => db.append('patient', 'p-1', { event_type: 'x', payload: big }), CONFIG],
      transaction: [
        () => db.transaction([{ aggregate_type: 'a', aggregate_id: 'b', event_type: 'x', payload: big }]),
        CONFIG,
      ],
      appendOutcome: [() => db.appendOutcome('patient', 'p-1', { event_type: 'x', payload: big }), CONFIG],
      transactionOutcome: [
        () =>
          db.transactionOutcome([{ aggregate_type: 'a', aggregate_id: 'b', event_type: 'x', payload: big }]),
        CONFIG,
      ],
      listSchemas: [() => db.listSchemas({}, stopped), 'stopped'],
      schemas: [() => db.schemas(stopped), 'stopped'],
      getSchema: [() => db.getSchema(S), CONFIG],
      getSchemaHistory: [() => db.getSchemaHistory(S), CONFIG],
      createSchema: [() => db.createSchema({ aggregate: 'a', events: ['x'], big } as never), CONFIG],
      addSchemaEvents: [() => db.addSchemaEvents(S, ['x']), CONFIG],
      alterSchema: [() => db.alterSchema(S, {}), CONFIG],
      removeSchemaEvent: [() => db.removeSchemaEvent('patient', S), CONFIG],
      listTokens: [() => db.listTokens({}, stopped), 'stopped'],
      tokens: [() => db.tokens(stopped), 'stopped'],
      createToken: [() => db.createToken({ group: 'g', user: 'u', big } as never), CONFIG],
      revokeToken: [() => db.revokeToken(S), CONFIG],
      refreshToken: [() => db.refreshToken(S, {}), CONFIG],
      auditLog: [() => db.auditLog({ since: S }), CONFIG],
      verifyAuditLog: [() => db.verifyAuditLog(stopped), 'stopped'],
      listPlugins: [() => db.listPlugins(stopped), 'stopped'],
      pluginStatus: [() => db.pluginStatus(stopped), 'stopped'],
      pluginDeadLetters: [() => db.pluginDeadLetters(S), CONFIG],
      replayPlugin: [() => db.replayPlugin(S), CONFIG],
      retryPlugin: [() => db.retryPlugin(S), CONFIG],
      getCheckpoint: [() => db.getCheckpoint(stopped), 'stopped'],
      getLedgerConsistency: [() => db.getLedgerConsistency(1, 2, stopped), 'stopped'],
      getLedgerProof: [() => db.getLedgerProof(0), CONFIG],
      verifyEvent: [() => db.verifyEvent('patient', 'p-1', 0), CONFIG],
      verifyLedgerInclusion: [
        () => db.verifyLedgerInclusion({ ...record, position: 0 }, { size: 1, root: '0'.repeat(64) }),
        CONFIG,
      ],
      audit: [() => db.audit(), CONFIG],
      subscribe: [() => db.subscribe({ from: -1 }), CONFIG],
    };
    const methods = Object.getOwnPropertyNames(EventDbxClient.prototype).filter((m) => m !== 'constructor');
    expect(Object.keys(calls).sort()).toEqual(methods.sort());
    for (const [name, [call, expected]] of Object.entries(calls)) {
      let result: unknown;
      expect(() => (result = call()), name).not.toThrow();
      const iterator = result as AsyncGenerator<unknown>;
      if (!(result instanceof Promise)) expect(typeof iterator[Symbol.asyncIterator], name).toBe('function');
      const e = await rejection(result instanceof Promise ? result : iterator.next());
      if (expected === 'stopped')
        expect(e, name).toMatchObject({ code: 'EDBX_ERR_CANCELLED', cause: { message: 'stopped' } });
      else {
        expect(e, name).toBeInstanceOf(EventDbxClientError);
        expect(e, name).toMatchObject({ code: expected });
        expect((e as Error).message, name).toMatch(/version|position|from|surrogate|JSON|trust/);
      }
    }
  });
});
