/**
 * The event record, exactly as the API serves it, and what is hashed into the Merkle tree.
 *
 * Leaf data is the RFC 8785 canonical JSON of the record without `hash` and `merkle_root`: anyone holding
 * a record as served can recompute its leaf hash (see `leafDataOf`).
 */
import { canonicalJson } from './canonical.js';
import { err } from './errors.js';
import { fieldName, isWellFormedText } from './names.js';

export type Payload = Record<string, string>;

export interface IssuedBy {
  readonly group: string;
  readonly user: string;
}

export interface EventMetadata {
  readonly event_id: string;
  readonly created_at: string;
  readonly issued_by: IssuedBy;
}

export interface EventRecord {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly event_type: string;
  readonly payload: Payload;
  readonly metadata: EventMetadata;
  readonly version: number;
  /** Store-wide, gap-free, 1-based commit order. */
  readonly position: number;
  /** Hex RFC 6962 leaf hash of the canonical record without `hash` and `merkle_root`. */
  readonly hash: string;
  /** Hex root of the aggregate's Merkle tree after this event. */
  readonly merkle_root: string;
}

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
 * else is refused naming the field. Keys keep their order of appearance.
 */
export function normalizePayload(input: unknown, maxBytes = DEFAULT_MAX_PAYLOAD_BYTES): Payload {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw err('EDBX_ERR_INVALID_PAYLOAD', { actual: describe(input) });
  }
  const out: Payload = Object.create(null) as Payload;
  let size = 2;
  for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
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

/** Canonical bytes hashed as the Merkle leaf of an event. */
export function leafDataOf(record: UnsealedRecord | EventRecord): Buffer {
  const { hash: _h, merkle_root: _r, ...rest } = record as EventRecord;
  return Buffer.from(canonicalJson(rest), 'utf8');
}

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
