/**
 * Store operations behind the CLI commands. Each takes parsed arguments and returns a JSON-able result;
 * the CLI runs them on a store it opens itself, or (while a server runs) asks the server to run them
 * over its control socket, so output and exit codes are identical either way.
 */
import path from 'node:path';
import { err } from '../core/errors.js';
import { MAX_WHOLE, expectedVersion, wholeNumber } from '../core/names.js';
import {
  archiveAggregate,
  backupStore,
  commitStagedDetailed,
  discardStaged,
  restoreAggregate,
  stageEvent,
  takeSnapshot,
  verifyNamed,
  verifyAll,
} from '../store/index.js';
import { auditEntries, auditFromPosition, auditSince } from '../store/audit-log.js';
import { verifyAuditLog } from '../store/audit-state.js';
import { currentCheckpoint, verifyFromCheckpoint } from '../store/checkpoints.js';
import { aggregatePages, eventPages, schemaPages, tokenPages } from '../store/pages.js';
import { changeKeys } from '../store/secure.js';
import { createToken, refreshToken, revokeToken } from '../store/tokens.js';
import { PLUGIN_OPS } from './ops/plugin.js';
import { SCHEMA_OPS } from './ops/schema.js';
import type { Listing, Op, OpArgs } from './ops/types.js';
import type { EventStore } from '../store/store.js';
import type { WriteContext } from '../store/types.js';
import type { EventRecord } from '../core/event.js';

const str = (args: OpArgs, name: string): string => String(args[name]);
const optNumber = (args: OpArgs, name: string, flag: string): number | undefined => {
  const v = args[name];
  if (v === undefined) return undefined;
  const n = wholeNumber(v);
  if (n === undefined)
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: flag,
      value: v,
      reason: `use a whole number from 0 to ${MAX_WHOLE}`,
    });
  return n;
};

/** Parse repeated `--field KEY=VALUE` into a payload; the first '=' splits, values may contain '='. */
export function parseFields(fields: readonly string[]): Record<string, string> {
  // A Map, then own properties: a key such as `__proto__` reaches validation instead of vanishing.
  const payload = new Map<string, string>();
  for (const f of fields) {
    const eq = f.indexOf('=');
    if (eq <= 0) {
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: '--field',
        value: f,
        reason: 'use KEY=VALUE (e.g. --field status=active)',
      });
    }
    const key = f.slice(0, eq);
    if (payload.has(key)) {
      throw err('EDBX_ERR_INVALID_ARGUMENT', {
        name: '--field',
        value: key,
        reason: 'given twice: give each field once',
      });
    }
    payload.set(key, f.slice(eq + 1));
  }
  return Object.fromEntries(payload);
}

/** An operation on one aggregate with an optional `--comment` (snapshot, archive, restore). */
const commented =
  <T>(
    key: string,
    fn: (store: EventStore, type: string, id: string, ctx: WriteContext, comment?: string) => Promise<T>,
  ): Op =>
  async ({ store }, a, ctx) => ({
    [key]: await fn(store, str(a, 'aggregate'), str(a, 'aggregateId'), ctx, a.comment as string | undefined),
  });

/** `--skip` and `--take` of a listing. */
const window = (a: OpArgs) => ({
  skip: optNumber(a, 'skip', '--skip') ?? 0,
  ...(a.take === undefined ? {} : { take: optNumber(a, 'take', '--take')! }),
});

/** The long listings, read and printed a page at a time (see Listing, and run.ts). */
export const LISTINGS: Record<string, Listing> = {
  'aggregate.list': {
    key: 'aggregates',
    pages: ({ store }, a, signal) =>
      aggregatePages(store, {
        ...window(a),
        ...(a.type === undefined ? {} : { type: str(a, 'type') }),
        signal,
      }),
  },
  'aggregate.replay': {
    key: 'events',
    pages: ({ store }, a, signal) =>
      eventPages(store, str(a, 'aggregate'), str(a, 'aggregateId'), { ...window(a), signal }),
  },
  'token.list': {
    key: 'tokens',
    pages: ({ store }, a, signal) => tokenPages(store, { ...window(a), signal }),
  },
  'schema.list': {
    key: 'schemas',
    pages: ({ store }, a, signal) => schemaPages(store, { ...window(a), signal }),
  },
};

/**
 * A listing as one result, for a caller that wants it whole: a control request without `stream`
 * (a CLI of an earlier version) and the tests that drive an operation directly.
 */
const whole =
  (name: string): Op =>
  async (secure, a, _ctx, _progress, signal) => {
    const { key, pages } = LISTINGS[name]!;
    const items: unknown[] = [];
    for await (const page of pages(secure, a, signal)) for (const item of page) items.push(item);
    return { [key]: items };
  };

/** `aggregate commit`'s answer: what it appended, or (`duplicate`) found appended before. */
const committedOf = ({ records, duplicate }: { records: EventRecord[]; duplicate: boolean }) => ({
  committed: records,
  duplicate,
});

export const OPS: Record<string, Op> = {
  'aggregate.apply': async ({ store }, a, ctx) => {
    const req = {
      aggregate_type: str(a, 'aggregate'),
      aggregate_id: str(a, 'aggregateId'),
      event_type: str(a, 'event'),
      payload: parseFields((a.field as string[] | undefined) ?? []),
      // The same rule and code as the API's expected_version (EDBX_ERR_INVALID_EXPECTED_VERSION).
      expected_version: a.expectedVersion === undefined ? undefined : expectedVersion(a.expectedVersion),
      event_id: a.eventId === undefined ? undefined : str(a, 'eventId'),
    };
    // Staging again an event already staged or appended (same --event-id) stages nothing: say so.
    if (a.stage) return { ...(await stageEvent(store, req, ctx)) };
    // A retry of the same --event-id returns the original record; say so (the HTTP API answers 200).
    const [r] = await store.appendDetailed([req], ctx);
    return { event: r!.record, duplicate: r!.duplicate };
  },
  'aggregate.get': async ({ store }, a, _ctx, _progress, signal) => ({
    aggregate: await store.aggregate(str(a, 'aggregate'), str(a, 'aggregateId'), {
      ...(a.version === undefined ? {} : { version: versionArg(a.version) }),
      includeEvents: Boolean(a.includeEvents),
      signal,
    }),
  }),
  'aggregate.verify': async ({ store }, a, _ctx, progress, signal) => {
    if (a.aggregate === undefined && a.aggregateId === undefined)
      return { all: await verifyAll(store, progress, signal) };
    if (a.aggregate === undefined || a.aggregateId === undefined) {
      throw err('EDBX_ERR_USAGE', {
        reason: 'give both --aggregate and --aggregate-id, or neither to verify everything',
      });
    }
    const type = str(a, 'aggregate');
    const id = str(a, 'aggregateId');
    return { report: await verifyNamed(store, type, id, signal) };
  },
  'aggregate.snapshot': commented('snapshot', takeSnapshot),
  'aggregate.archive': commented('audit', archiveAggregate),
  'aggregate.restore': commented('audit', restoreAggregate),
  'aggregate.commit': async ({ store }, a) =>
    a.discard ? { discarded: await discardStaged(store) } : committedOf(await commitStagedDetailed(store)),

  'token.generate': async ({ store }, a, ctx) => ({
    token: await createToken(
      store,
      {
        group: str(a, 'group'),
        user: str(a, 'user'),
        expiration: a.expiration,
        limit: a.limit,
        keepAlive: Boolean(a.keepAlive),
        readOnly: Boolean(a.readOnly),
        scopes: (a.aggregate as string[] | undefined) ?? [],
        audit: Boolean(a.audit),
      },
      ctx,
    ),
  }),
  'token.revoke': async ({ store }, a, ctx) => ({ token: await revokeToken(store, str(a, 'token'), ctx) }),
  'token.refresh': async ({ store }, a, ctx) => ({
    token: await refreshToken(store, str(a, 'token'), { expiration: a.expiration, limit: a.limit }, ctx),
  }),

  'audit.list': async ({ store }, a, _ctx, _progress, signal) => ({
    entries: await auditEntries(store, {
      since: auditSince(a.since, '--since'),
      fromPosition: auditFromPosition(a.fromPosition, '--from-position'),
      signal,
    }),
  }),
  'audit.verify': ({ store }, _a, _ctx, _progress, signal) => verifyAuditLog(store, signal),

  'checkpoint.show': async (secure) => ({
    checkpoint: { ...(await currentCheckpoint(secure)), public_key: secure.publicKeyPem },
  }),
  'checkpoint.verify': async (secure, a) => {
    const note = String(a.note);
    const pinned = a.public_key === undefined ? undefined : String(a.public_key);
    return { verification: await verifyFromCheckpoint(secure, note, pinned) };
  },
  'checkpoint.public-key': async (secure) => ({ public_key: secure.publicKeyPem }),
  backup: async (secure, a, ctx, progress, signal) => {
    const dir = str(a, 'dir');
    // The server runs elsewhere than the CLI: the CLI resolves the path where it runs.
    if (!path.isAbsolute(dir))
      throw err('EDBX_ERR_USAGE', { reason: 'the backup directory must be an absolute path' });
    const dataDir = secure.keyringFile === undefined ? undefined : path.dirname(secure.keyringFile);
    const keys = secure.keyFingerprints();
    return { backup: await backupStore(secure.store, dir, ctx, { signal, progress, dataDir, keys }) };
  },
  'config.apply': async (secure, a, ctx) => ({
    keys: await changeKeys(
      secure,
      {
        currentMasterKey: str(a, 'current_master_key'),
        newMasterKey: a.new_master_key as string | undefined,
        newDek: a.new_dek as string | undefined,
      },
      ctx,
      (a.changes as Record<string, string> | undefined) ?? {},
    ),
  }),
  ...SCHEMA_OPS,
  ...PLUGIN_OPS,
  ...Object.fromEntries(Object.keys(LISTINGS).map((name) => [name, whole(name)])),
};

function versionArg(v: unknown): number {
  const n = wholeNumber(v);
  if (n === undefined || n < 1) throw err('EDBX_ERR_INVALID_VERSION', { value: v });
  return n;
}
