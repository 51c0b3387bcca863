/**
 * RFC 4180 CSV: CRLF record terminators, fields quoted when they hold a comma, a quote, a line break
 * (or edge spaces), quotes doubled inside quoted fields. The parser also reports where the last
 * complete record ends, so a record torn by a crash can be cut off. Files are read in chunks
 * (`scanCsv`): a sink's file grows for as long as it runs, past what one string can hold.
 */
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

const NEEDS_QUOTES = /[",\r\n]|^\s|\s$/;

export function formatField(value: string): string {
  return NEEDS_QUOTES.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function formatRecord(fields: readonly string[]): string {
  return `${fields.map(formatField).join(',')}\r\n`;
}

export interface ParsedCsv {
  readonly records: string[][];
  /** Index in the text just after the last complete (terminated) record. */
  readonly end: number;
}

/** Parse CSV text (CRLF or LF terminators); an unterminated last record is left out. */
export function parseCsv(text: string): ParsedCsv {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  let end = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (quoted) {
      const close = text.indexOf('"', i);
      if (close < 0) {
        field += text.slice(i);
        i = n;
        break;
      }
      field += text.slice(i, close);
      if (text.charCodeAt(close + 1) === 34) {
        field += '"';
        i = close + 2;
      } else {
        quoted = false;
        i = close + 1;
      }
      continue;
    }
    if (c === 34 /* " */) {
      quoted = true;
      i++;
    } else if (c === 44 /* , */) {
      record.push(field);
      field = '';
      i++;
    } else if (c === 13 /* \r */ && text.charCodeAt(i + 1) === 10) {
      i += 2;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      end = i;
    } else if (c === 10 /* \n */) {
      i++;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      end = i;
    } else {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 34 || d === 44 || d === 13 || d === 10) break;
        j++;
      }
      field += text.slice(i, j);
      i = j;
    }
  }
  return { records, end };
}

/** The complete records of one chunk of a file, and the byte offset just after the last of them. */
export interface CsvChunk {
  readonly records: string[][];
  readonly end: number;
}

/**
 * The complete records of `file`, a chunk at a time, in bounded memory (one chunk plus a record
 * spanning chunks). Nothing for a missing file. An unterminated last record is left out: the last
 * chunk's `end` is where a file torn by a crash should be cut.
 */
export async function* scanCsv(file: string, chunkBytes = 1 << 20): AsyncGenerator<CsvChunk> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  let end = 0;
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: chunkBytes })) {
      const text = rest + decoder.write(chunk as Buffer);
      const parsed = parseCsv(text);
      end += Buffer.byteLength(text.slice(0, parsed.end));
      rest = text.slice(parsed.end);
      yield { records: parsed.records, end };
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
}
