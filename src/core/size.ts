/**
 * A rough estimate of the memory a JSON value (an aggregate's state) holds, for the caches that are
 * bounded in bytes (the store's state LRU, the plugins' state trackers). A count of entries alone
 * bounds nothing: one state may be a few bytes or tens of megabytes. The figure follows V8's layout
 * loosely (a header per object, a slot per property, two bytes per string character at worst); it
 * is meant to be within a small factor of the truth, cheap (one walk, no serialisation), and never
 * zero, so that many tiny entries still fill a budget.
 *
 * @example
 * estimateBytes({ temp: '4', readings: [1, 2, 3] }); // a few hundred bytes
 */

/** What any heap object costs before its contents (header, hidden class or elements pointer). */
const OBJECT_BYTES = 32;
/** A property slot or array element: a tagged pointer plus its share of the backing store. */
const SLOT_BYTES = 16;
const STRING_BYTES = 16;
const NUMBER_BYTES = 16;

const stringBytes = (s: string): number => STRING_BYTES + 2 * s.length;

/**
 * Estimated bytes held by `value` (a JSON value: objects, arrays, strings, numbers, booleans, null).
 * Shared sub-values are counted each time they are reached: an over-estimate, which is the safe side
 * for a budget. Walks with an explicit stack, so a deeply nested value cannot overflow the call stack.
 */
export function estimateBytes(value: unknown): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') total += stringBytes(v);
    else if (typeof v === 'number') total += NUMBER_BYTES;
    else if (Array.isArray(v)) {
      total += OBJECT_BYTES + SLOT_BYTES * v.length;
      for (const item of v) stack.push(item);
    } else if (typeof v === 'object' && v !== null) {
      total += OBJECT_BYTES;
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        // Keys are mostly interned strings shared by every state of a type; counting them anyway
        // keeps states with many fields from looking free.
        total += SLOT_BYTES + stringBytes(k);
        stack.push((v as Record<string, unknown>)[k]);
      }
    } else total += SLOT_BYTES; // booleans, null: a tagged value in its slot
  }
  return total;
}
