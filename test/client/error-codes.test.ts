/**
 * `eventdbx/client` exports the registry's codes, as the `ErrorCode` type and the `ERROR_CODES` list,
 * and `isApiError` takes only those, so a misspelt code does not compile (QA qa-sdk #6; `npx tsc`
 * checks the `@ts-expect-error` below).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT_ERROR_CODES,
  type ClientOptions,
  ERROR_CODES,
  type ErrorCode,
  EventDbxApiError,
  isApiError,
} from '../../src/client/index.js';
import { type TestServer, testServer } from '../helpers/http.js';
import { countingClient, rejection } from './checks.js';

let s: TestServer;
const client = (o: ClientOptions = {}) => countingClient(s, o);

beforeAll(async () => {
  s = await testServer();
});
afterAll(() => s.close());

describe('error codes are typed and listed by eventdbx/client (qa-sdk #6)', () => {
  it('ERROR_CODES lists the registry, the SDK codes included; isApiError takes only known codes', async () => {
    expect(ERROR_CODES).toContain('EDBX_ERR_VERSION_CONFLICT');
    for (const code of CLIENT_ERROR_CODES) expect(ERROR_CODES).toContain(code);
    const code: ErrorCode = 'EDBX_ERR_AGGREGATE_NOT_FOUND';
    const e = await rejection(client().getAggregate('patient', 'nobody'));
    expect(isApiError(e, code)).toBe(true);
    expect(e).toBeInstanceOf(EventDbxApiError);
    // @ts-expect-error a misspelt code does not compile (npx tsc checks this file)
    expect(isApiError(e, 'EDBX_ERR_AGGREGATE_NOT_FOUNDD')).toBe(false);
  });
});
