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

export function canonicalJson(value: unknown): string {
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
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(k)}:${canonicalJson(v)}`;
        first = false;
      }
      return out + '}';
    }
    default:
      throw err('EDBX_ERR_INTERNAL', { reason: `canonical JSON: cannot encode ${typeof value}` });
  }
}
