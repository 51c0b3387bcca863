/**
 * Long listings read a page at a time (`aggregate list`, `aggregate replay`, `token list`, `schema
 * list` of the CLI): a caller that sends or prints each page before asking for the next holds one
 * page, whatever the count (a million aggregates listed whole took about 1 GB on each side of the
 * control socket).
 */
import { err } from '../core/errors.js';
import type { EventRecord } from '../core/event.js';
import type { Schema } from '../core/schema.js';
import { describeToken } from '../core/tokens.js';
import { listSchemas } from './schemas.js';
import type { EventStore } from './store.js';
import { tokenPosition, tokenRecords } from './tokens.js';
import type { AggregateSummary } from './types.js';

/** Aggregates per page: a summary is some 250 bytes of JSON. */
export const AGGREGATE_PAGE = 1000;
/** Events per page: an event may carry a payload of up to 256 KiB (max_payload_bytes). */
export const EVENT_PAGE = 128;
/** Tokens or schemas per page, the most an HTTP page of them holds. */
export const RECORD_PAGE = 1000;

export interface PageOptions {
  readonly skip?: number;
  readonly take?: number;
  readonly signal?: AbortSignal | undefined;
}

type PageRead = { skip: number; take: number } | { after: string; take: number };

/**
 * The pages of a listing in key order: the first after `skip` items, each next one after the last
 * item of the one before (`positionOf`), so an item created meanwhile is listed when its key comes
 * after the page being read (as paging the HTTP API with its cursor does).
 */
async function* keyPages<T>(
  read: (page: PageRead) => Promise<T[]>,
  positionOf: (last: T) => string,
  opts: PageOptions,
  size: number,
): AsyncGenerator<T[]> {
  let left = opts.take ?? Number.MAX_SAFE_INTEGER;
  let after: string | undefined;
  // Even an empty listing reads once: a bad type or a broken registry is refused, not listed empty.
  for (;;) {
    const want = Math.min(size, left);
    const page = await read(
      after === undefined ? { skip: opts.skip ?? 0, take: want } : { after, take: want },
    );
    if (page.length > 0) yield page;
    left -= page.length;
    if (page.length < want || left === 0) return;
    after = positionOf(page.at(-1)!);
  }
}

/** `store.list` a page at a time: the same aggregates as one `list` call with these options. */
export function aggregatePages(
  store: EventStore,
  opts: PageOptions & { type?: string },
  size = AGGREGATE_PAGE,
): AsyncGenerator<AggregateSummary[]> {
  return keyPages(
    (page) =>
      store.list({
        ...page,
        ...(opts.type === undefined ? {} : { type: opts.type }),
        signal: opts.signal,
      }),
    (last) => `${last.aggregate_type}/${last.aggregate_id}`,
    opts,
    size,
  );
}

/** What `token list` shows of every token (`listTokens`), a page at a time, in key order. */
export async function* tokenPages(
  store: EventStore,
  opts: PageOptions,
  size = RECORD_PAGE,
): AsyncGenerator<ReturnType<typeof describeToken>[]> {
  const records = keyPages(
    (page) => tokenRecords(store, { ...page, signal: opts.signal }),
    (last) => tokenPosition(store, last),
    opts,
    size,
  );
  for await (const page of records) {
    const now = store.env.now();
    yield page.map((t) => describeToken(t, now));
  }
}

/** `listSchemas` a page at a time, by aggregate type. */
export function schemaPages(
  store: EventStore,
  opts: PageOptions,
  size = RECORD_PAGE,
): AsyncGenerator<Schema[]> {
  return keyPages(
    (page) => listSchemas(store, { ...page, signal: opts.signal }),
    (last) => last.aggregate,
    opts,
    size,
  );
}

/**
 * `store.events` a page at a time, in version order, up to the version the aggregate has once the
 * first page is read (events appended later are left for the next read, as one `events` call leaves
 * them, so an aggregate written to faster than it is read still ends).
 * Each page is a read of its own, so an archive or restore between two pages is followed.
 */
export async function* eventPages(
  store: EventStore,
  type: string,
  id: string,
  opts: PageOptions,
  size = EVENT_PAGE,
): AsyncGenerator<EventRecord[]> {
  let left = opts.take ?? Number.MAX_SAFE_INTEGER;
  const want = Math.min(size, left);
  const first = await store.events(type, id, { skip: opts.skip ?? 0, take: want, signal: opts.signal });
  if (first.length > 0) yield first;
  left -= first.length;
  if (first.length < want || left === 0) return;
  const head = await store.meta(type, id);
  if (!head) throw err('EDBX_ERR_AGGREGATE_NOT_FOUND', { aggregate_type: type, aggregate_id: id });
  const to = head.meta.version;
  let next = first.at(-1)!.version + 1;
  while (left > 0 && next <= to) {
    const page = await store.events(type, id, {
      fromVersion: next,
      toVersion: to,
      take: Math.min(size, left),
      signal: opts.signal,
    });
    if (page.length === 0) return;
    yield page;
    left -= page.length;
    next = page.at(-1)!.version + 1;
  }
}
