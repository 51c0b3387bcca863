/**
 * JSON text of an answer in pieces, exactly the text `JSON.stringify` writes whole. A control answer
 * can be large (`aggregate get --include-events` of a 300,000-event aggregate is some 140 MB): written
 * whole, one `JSON.stringify` holds the event loop for over a second and the text in memory twice.
 * Long arrays are cut into runs of elements, each stringified on its own, so the writer can yield
 * between pieces.
 */

const isPlainObject = (v: object): boolean => {
  const proto = Object.getPrototypeOf(v) as unknown;
  return (
    (proto === Object.prototype || proto === null) && typeof (v as { toJSON?: unknown }).toJSON !== 'function'
  );
};

/** Pieces whose concatenation is `JSON.stringify(value)`; arrays longer than `run` come `run` elements at a time. */
export function* jsonPieces(value: unknown, run = 1000): Generator<string> {
  if (Array.isArray(value) && value.length > run) {
    yield '[';
    for (let i = 0; i < value.length; i += run) {
      const part = value.slice(i, i + run).map((v: unknown) => JSON.stringify(v) ?? 'null');
      yield (i > 0 ? ',' : '') + part.join(',');
    }
    yield ']';
    return;
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && isPlainObject(value)) {
    yield '{';
    let first = true;
    for (const [k, v] of Object.entries(value)) {
      // Members JSON leaves out.
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      yield `${first ? '' : ','}${JSON.stringify(k)}:`;
      first = false;
      yield* jsonPieces(v, run);
    }
    yield '}';
    return;
  }
  yield JSON.stringify(value) ?? 'null';
}
