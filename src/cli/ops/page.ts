/**
 * One page of a listing that the CLI prints whole (`token list`, `schema list`): run.ts asks for it a
 * page at a time, on the server or on its own store, so neither side holds the whole listing. Bounds,
 * cursors and errors are the HTTP listings' (server/paging.ts).
 */
import { MAX_PAGE, type Query, decodeCursor, isKeyCursor, num, pageOf } from '../../server/paging.js';
import type { EventStore } from '../../store/store.js';
import type { Op } from './types.js';

export interface PageRead {
  readonly after: string | undefined;
  readonly skip: number;
  readonly take: number;
  readonly signal: AbortSignal | undefined;
}

/**
 * An operation answering `{ [key]: items, next_cursor }` for the args `take` (1 to MAX_PAGE, default
 * MAX_PAGE), `skip` and `cursor`. `read` reads `take` items after `after`; `cursorOf` says where the
 * last one shown is; `show` is what the listing shows of the items.
 */
export function pagedOp<T>(
  key: string,
  read: (store: EventStore, page: PageRead) => Promise<T[]>,
  cursorOf: (store: EventStore, last: T) => string,
  show: (store: EventStore, items: T[]) => unknown[] = (_store, items) => items,
): Op {
  return async ({ store }, a, _ctx, _progress, signal) => {
    const q: Query = {};
    for (const name of ['take', 'skip', 'cursor']) if (a[name] !== undefined) q[name] = String(a[name]);
    const take = num(q, 'take', MAX_PAGE, 1, MAX_PAGE);
    const items = await read(store, {
      after: decodeCursor(q.cursor, isKeyCursor)?.k,
      skip: num(q, 'skip', 0),
      take: take + 1,
      signal,
    });
    const { shown, next_cursor } = pageOf(items, take, (last) => ({ k: cursorOf(store, last) }));
    return { [key]: show(store, shown), next_cursor };
  };
}
