/**
 * The event record, exactly as the API serves it, and what is hashed into the Merkle tree.
 *
 * Leaf data is the RFC 8785 canonical JSON of the record without `hash` and `merkle_root`: anyone holding
 * a record as served can recompute its leaf hash (see `leafDataOf`).
 */
import { canonicalJson } from './canonical.js';
import { err } from './errors.js';
import { fieldName, isWellFormedText } from './names.js';

// The record shapes are the wire protocol's (one definition, shared with the client SDK).
import type { EventRecord, Payload } from '../protocol/records.js';

export type { EventMetadata, EventRecord, IssuedBy, Payload } from '../protocol/records.js';

export type UnsealedRecord = Omit<EventRecord, 'hash' | 'merkle_root'>;

export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

const describe = (v: unknown): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : `a${typeof v === 'object' ? 'n object' : ' ' + typeof v}`;

/**
 * String-only storage: strings stay, finite numbers and booleans become their string form, anything
 * else is refused naming the field. Keys come out sorted (the canonical order the record is hashed and
 * stored in), so a record reads back exactly as its append returned it.
 */
export function normalizePayload(input: unknown, maxBytes = DEFAULT_MAX_PAYLOAD_BYTES): Payload {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw err('EDBX_ERR_INVALID_PAYLOAD', { actual: describe(input) });
  }
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let size = 2;
  const fields = input as Record<string, unknown>;
  for (const key of Object.keys(fields).sort()) {
    const value = fields[key];
    fieldName(key);
    let text: string;
    if (typeof value === 'string') text = value;
    else if (typeof value === 'boolean') text = String(value);
    else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
    else
      throw err('EDBX_ERR_INVALID_FIELD_VALUE', {
        field: key,
        actual: typeof value === 'number' ? 'not a finite number' : describe(value),
      });
    if (!isWellFormedText(text)) {
      throw err('EDBX_ERR_INVALID_FIELD_VALUE', {
        field: key,
        actual: 'text with a NUL or a lone surrogate',
      });
    }
    out[key] = text;
    size += Buffer.byteLength(key) + Buffer.byteLength(text) + 6;
  }
  if (size > maxBytes) throw err('EDBX_ERR_PAYLOAD_TOO_LARGE', { size, limit: maxBytes });
  return { ...out };
}

/** Canonical JSON hashed as the Merkle leaf of an event (the record without hash and root). */
export function leafJsonOf(record: UnsealedRecord | EventRecord): string {
  const { hash: _h, merkle_root: _r, ...rest } = record as EventRecord;
  return canonicalJson(rest);
}

/** Canonical bytes hashed as the Merkle leaf of an event. */
export const leafDataOf = (record: UnsealedRecord | EventRecord): Buffer =>
  Buffer.from(leafJsonOf(record), 'utf8');

/** Fold payloads into state: later values overwrite earlier ones. */
export function foldState(state: Payload, payload: Payload): Payload {
  return { ...state, ...payload };
}

/** Structural equality of two payloads (same keys and values, order ignored). */
export function samePayload(a: Payload, b: Payload): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}
