/**
 * The server's one JSON body parser. JSON is UTF-8 (RFC 8259), so other charsets and bytes that are not
 * UTF-8 are refused rather than decoded with replacement characters; bodies are not compressed
 * (Content-Encoding is refused, never parsed as if it were JSON). Duplicate keys are refused (JSON.parse
 * would keep the last silently), a key named `__proto__` is refused, and numbers inside a payload keep
 * the exact digits sent: payload values are stored as strings, and a JavaScript number would round
 * 12345678901234567890. Elsewhere a whole number beyond 2^53−1 (a count, a version, a threshold) is a
 * BigInt of the digits sent: it is no JSON-schema type, so validation refuses it quoting those digits,
 * where a JavaScript number would have quoted 18446744073709552000 for 18446744073709551615.
 *
 * A body that nests arrays and objects deeper than MAX_JSON_DEPTH (64) is refused before anything
 * recursive walks it.
 *
 * Fast path: native JSON.parse, then one lexical count of members and depth in the text and one walk
 * (members, `__proto__`, payload numbers). Only bodies with duplicate keys, numbers in a payload or
 * numbers beyond 2^53−1 are parsed again with lossless-json, which keeps numbers as their source text
 * and names duplicate keys.
 */
import { isUtf8 } from 'node:buffer';
import { parse as parseContentType } from 'content-type';
import type { FastifyRequest } from 'fastify';
import { isLosslessNumber, parse as parseLossless } from 'lossless-json';
import { err } from '../core/errors.js';
import { jsonShape, tooDeep } from '../core/json-nesting.js';

export function parseJsonBody(req: FastifyRequest, body: Buffer): unknown {
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  if (encoding && encoding !== 'identity') {
    throw err('EDBX_ERR_UNSUPPORTED_MEDIA_TYPE', {
      reason: `Content-Encoding ${encoding} is not supported: send the body uncompressed`,
    });
  }
  const charset = charsetOf(req.headers['content-type']);
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw err('EDBX_ERR_UNSUPPORTED_MEDIA_TYPE', {
      reason: `charset ${charset} is not supported: JSON bodies are UTF-8 (charset=utf-8, or no charset)`,
    });
  }
  if (!isUtf8(body)) {
    throw err('EDBX_ERR_INVALID_JSON', { reason: 'the body is not valid UTF-8: send it encoded as UTF-8' });
  }
  const text = body.toString('utf8');
  if (text.trim() === '') {
    // Many clients send a JSON Content-Type on every request: an empty body is no body, unless the
    // route needs one.
    const schema = req.routeOptions.schema?.body as { required?: unknown[] } | undefined;
    if (!schema?.required?.length) return null;
    throw err('EDBX_ERR_INVALID_JSON', { reason: 'the body is empty: send a JSON object' });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw err('EDBX_ERR_INVALID_JSON', { reason: (e as Error).message });
  }
  // Before anything recursive walks it (a few thousand levels would overflow the stack).
  const shape = jsonShape(text);
  const deep = tooDeep(
    shape.depth,
    'it',
    'send a flatter body (no EventDBX request needs more than 3 levels)',
  );
  if (deep !== undefined) throw err('EDBX_ERR_INVALID_JSON', { reason: deep });
  const seen = walk(value, false);
  if (!seen.exactNumbers && seen.members === shape.members) return value;
  try {
    return exact(parseLossless(text), false);
  } catch (e) {
    const key = /Duplicate key '(.*)' encountered/.exec((e as Error).message)?.[1];
    throw err('EDBX_ERR_INVALID_JSON', {
      reason:
        key === undefined
          ? (e as Error).message
          : `field ${JSON.stringify(key)} appears more than once in an object: send each field once`,
    });
  }
}

function charsetOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  try {
    return parseContentType(header).parameters.charset?.toLowerCase();
  } catch {
    throw err('EDBX_ERR_UNSUPPORTED_MEDIA_TYPE', {
      reason: `malformed Content-Type ${JSON.stringify(header)}`,
    });
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Count object members, refuse `__proto__`, and note numbers whose digits must be kept: inside a
 * `payload` object, and whole numbers beyond 2^53−1 anywhere. Recursive: only for a value whose depth
 * `jsonShape` checked. More members in the text than here means a key appeared twice in one object
 * (JSON.parse keeps the last).
 */
function walk(v: unknown, inPayload: boolean): { members: number; exactNumbers: boolean } {
  let members = 0;
  let exactNumbers = unsafeWhole(v);
  if (Array.isArray(v)) {
    for (const item of v) {
      const r = walk(item, false);
      members += r.members;
      exactNumbers ||= r.exactNumbers;
    }
  } else if (isObject(v)) {
    for (const key of Object.keys(v)) {
      if (key === '__proto__') {
        throw inPayload
          ? err('EDBX_ERR_INVALID_FIELD_NAME', {
              value: key,
              reason: 'this name is not allowed: rename the field',
            })
          : err('EDBX_ERR_INVALID_ARGUMENT', { name: 'field name', value: key, reason: 'is not allowed' });
      }
      members++;
      const child = v[key];
      if (inPayload && typeof child === 'number') exactNumbers = true;
      const r = walk(child, key === 'payload' && isObject(child));
      members += r.members;
      exactNumbers ||= r.exactNumbers;
    }
  }
  return { members, exactNumbers };
}

/** A whole number JavaScript cannot hold exactly (its digits were rounded by JSON.parse). */
const unsafeWhole = (v: unknown): boolean =>
  typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v);

/**
 * lossless-json's numbers: the digits as sent for a payload value; elsewhere JavaScript numbers, but a
 * BigInt for a whole number written in digits beyond 2^53−1, so its refusal quotes what was sent.
 */
function exact(v: unknown, payloadValue = false): unknown {
  if (isLosslessNumber(v)) {
    if (payloadValue) return v.value;
    const n = Number(v.value);
    return unsafeWhole(n) && /^-?[0-9]+$/.test(v.value) ? BigInt(v.value) : n;
  }
  if (Array.isArray(v)) return v.map((item) => exact(item));
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(v)) {
    out[key] =
      key === 'payload' && isObject(child)
        ? Object.fromEntries(Object.entries(child).map(([k, c]) => [k, exact(c, true)]))
        : exact(child);
  }
  return out;
}
