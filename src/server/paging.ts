/**
 * Paging of the listings: page bounds, whole-number query values, and opaque cursors (base64url JSON
 * that only this server reads back). A bad value is EDBX_ERR_INVALID_ARGUMENT naming the parameter.
 */
import { err } from '../core/errors.js';
import { wholeNumber } from '../core/names.js';

export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;

export type Query = Record<string, string | undefined>;

/** The whole-number query value `name`, `fallback` when absent, refused outside `min`..`max`. */
export function num(
  q: Query,
  name: string,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const raw = q[name];
  if (raw === undefined) return fallback;
  const n = wholeNumber(raw);
  if (n === undefined || n < min || n > max) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name,
      value: raw,
      reason: `use a whole number from ${min} to ${max}`,
    });
  }
  return n;
}

export const encodeCursor = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/**
 * A page from items read with one more than it shows (`take + 1`): the first `take`, and the cursor
 * after the last of them when there is more (`cursorOf` gives what the cursor holds), else null.
 */
export function pageOf<T>(
  items: readonly T[],
  take: number,
  cursorOf: (last: T) => unknown,
): { shown: T[]; next_cursor: string | null } {
  const shown = items.slice(0, take);
  const last = shown.at(-1);
  return {
    shown,
    next_cursor: items.length > take && last !== undefined ? encodeCursor(cursorOf(last)) : null,
  };
}

export function decodeCursor<T>(raw: string | undefined, check: (v: unknown) => v is T): T | undefined {
  if (raw === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    if (check(v)) return v;
  } catch {
    // fall through
  }
  throw err('EDBX_ERR_INVALID_ARGUMENT', {
    name: 'cursor',
    value: raw,
    reason: 'use the next_cursor of a previous page',
  });
}

/** A cursor after a version of one aggregate (its events, the audit log). */
export const isVersionCursor = (v: unknown): v is { v: number } =>
  typeof v === 'object' && v !== null && wholeNumber((v as { v: unknown }).v) !== undefined;

/** A cursor after an aggregate (`type/id`) of the aggregate listing. */
export const isKeyCursor = (v: unknown): v is { k: string } =>
  typeof v === 'object' && v !== null && typeof (v as { k: unknown }).k === 'string';
