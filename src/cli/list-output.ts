/**
 * Output of a listing printed as its pages come (see Listing in ops/types.ts). The --json document is
 * written piece by piece, byte for byte what `printJson` writes of the whole result, and closed only
 * when the listing is complete: a listing cut off by an error leaves it open (not valid JSON), so a
 * script cannot take a short list for the whole. Each page waits for stdout to take the one before,
 * so a slow reader (`| less`) slows the listing instead of piling it up in memory.
 */
import { drained } from '../server/control.js';
import { type Row, tableStream } from './output.js';

/** The reader closed stdout (`| head`): the listing stops there and ends quietly (see main.ts). */
export class ReaderGone extends Error {}

export interface ListPrinter {
  /** Print a page; the promise (when there is one) resolves once stdout took it. */
  items(page: readonly unknown[]): void | Promise<void>;
  /** Close the output: only once the listing is complete. */
  end(): void | Promise<void>;
}

/** Write to stdout; a promise when stdout's buffer is full, resolved once it drained. */
export function out(text: string): void | Promise<void> {
  const stdout = process.stdout;
  if (stdout.destroyed) throw new ReaderGone();
  if (text === '' || stdout.write(text)) return;
  return drained(stdout);
}

const indented = (item: unknown) => `    ${JSON.stringify(item, null, 2).replace(/\n/g, '\n    ')}`;

/** `{"<key>": [...]}` as `JSON.stringify(result, null, 2)` writes it, a page at a time. */
export function jsonList(key: string): ListPrinter {
  const head = `{\n  ${JSON.stringify(key)}: [`;
  let count = 0;
  return {
    items(page) {
      if (page.length === 0) return;
      const text = `${count === 0 ? `${head}\n` : ',\n'}${page.map(indented).join(',\n')}`;
      count += page.length;
      return out(text);
    },
    end: () => out(count === 0 ? `${head}]\n}\n` : '\n  ]\n}\n'),
  };
}

/** One or more lines per item, or `empty` for a listing of nothing. */
export function lineList<T>(line: (item: T) => string, empty: string): ListPrinter {
  let count = 0;
  return {
    items(page) {
      count += page.length;
      return out((page as readonly T[]).map((item) => `${line(item)}\n`).join(''));
    },
    end: () => (count === 0 ? out(`${empty}\n`) : undefined),
  };
}

/** A table of one row per item (see `tableStream`), or `(none)`. */
export function tableList<T>(row: (item: T) => Row): ListPrinter {
  const table = tableStream();
  return {
    items: (page) => out(table.rows((page as readonly T[]).map(row))),
    end: () => out(table.end()),
  };
}
