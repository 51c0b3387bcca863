/**
 * RFC 8785 (JCS) canonical JSON for the values EventDBX hashes: plain objects, arrays, strings, safe
 * integers and booleans. Object keys are sorted by UTF-16 code units (JavaScript's default sort) and
 * strings are serialized as ECMAScript JSON.stringify does, which is what RFC 8785 prescribes.
 * Integers print as JSON.stringify prints them (the ES Number serialization RFC 8785 requires).
 *
 * A dedicated encoder (rather than the generic `canonicalize` package) because it sits on the append
 * and verify hot paths; test/canonical.test.ts checks it against `canonicalize` on random values.
 */
import { err } from './errors.js';

const INDEX_LIKE = /^(?:0|[1-9][0-9]*)$/;
const SLOW = Symbol('slow');

/**
 * Fast path: copy objects with keys inserted in sorted order and let the native JSON.stringify do the
 * rest. JavaScript orders array-index-like keys ("7", "42") numerically before other keys, which
 * differs from RFC 8785's code-unit order, so such objects (rare) take the general path.
 */
function sortedCopy(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) {
    if (typeof value === 'number' && !Number.isFinite(value)) throw SLOW;
    return value;
  }
  if (Array.isArray(value)) return value.map(sortedCopy);
  const obj = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(obj).sort()) {
    if (INDEX_LIKE.test(k) || k === '__proto__') throw SLOW;
    out[k] = sortedCopy(obj[k]);
  }
  return out;
}

export function canonicalJson(value: unknown): string {
  try {
    return JSON.stringify(sortedCopy(value)) ?? general(value);
  } catch (e) {
    if (e !== SLOW) throw e;
    return general(value);
  }
}

function general(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value))
        throw err('EDBX_ERR_INTERNAL', { reason: 'canonical JSON: non-finite number' });
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map(general).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(k)}:${general(v)}`;
        first = false;
      }
      return out + '}';
    }
    default:
      throw err('EDBX_ERR_INTERNAL', { reason: `canonical JSON: cannot encode ${typeof value}` });
  }
}
