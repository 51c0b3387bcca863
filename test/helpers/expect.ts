/** Assertion helpers shared by the test suites. */
import { expect } from 'vitest';
import { type ErrorCode, type EventDbxError, isEventDbxError } from '../../src/core/errors.js';

/** Expect a promise (or a function, sync or async) to fail with the coded error `code`; returns it. */
export async function expectCode(
  p: Promise<unknown> | (() => unknown),
  code: ErrorCode | string,
): Promise<EventDbxError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (!isEventDbxError(e)) throw e;
    expect(e.code).toBe(code);
    return e;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}
