/**
 * How deep a JSON text nests, read from the text itself. JSON.parse takes any depth, but what then
 * walks the value (the body parser's checks, lossless-json, JSON.stringify of a message quoting it)
 * recurses, and a few thousand levels overflow the stack: a request that nests deeper than any
 * request needs is refused before anything walks it.
 */

/** Deepest nesting of arrays and objects a request may send; no EventDBX request needs more than 3. */
export const MAX_JSON_DEPTH = 64;

/**
 * Members and nesting depth of valid JSON text (parse it first: this reads it lexically). Every ':'
 * outside a string separates a key from its value; every '[' or '{' outside a string opens a level.
 *
 * @example
 * jsonShape('{"a":[1,{"b":2}]}'); // { members: 2, depth: 3 }
 */
export function jsonShape(text: string): { members: number; depth: number } {
  let members = 0;
  let open = 0;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x3a) members++;
    else if (c === 0x5b || c === 0x7b) {
      if (++open > depth) depth = open;
    } else if (c === 0x5d || c === 0x7d) open--;
  }
  return { members, depth };
}

/**
 * Why a text nested `depth` levels deep is refused (`what` nests …: `fix`), or undefined when it is
 * within the limit.
 */
export const tooDeep = (depth: number, what: string, fix: string): string | undefined =>
  depth <= MAX_JSON_DEPTH
    ? undefined
    : `${what} nests arrays and objects ${depth} levels deep, over the limit of ${MAX_JSON_DEPTH}: ${fix}`;
