/**
 * RFC 4180 CSV: CRLF record terminators, fields quoted when they hold a comma, a quote, a line break
 * (or edge spaces), quotes doubled inside quoted fields. The parser also reports where the last
 * complete record ends, so a record torn by a crash can be cut off. Files are walked as bytes in
 * chunks (`walkCsv`): a sink's file grows for as long as it runs, past what one string can hold.
 */

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

const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const LF = 0x0a;
const CRLF_BYTES = Buffer.from('\r\n');
const LF_BYTES = Buffer.from('\n');

/** One record of a CSV byte stream, as `walkCsv` found it: where its bytes are, not yet decoded. */
export class CsvRecord {
  constructor(
    /** The bytes the record is in: `source[from, to)`, without its terminator. */
    readonly source: Buffer,
    readonly from: number,
    readonly to: number,
    /** CRLF or LF, as the record ended. */
    readonly terminator: Buffer,
    /** How many fields it has. */
    readonly fields: number,
    /** Offsets (from `from`) of its first commas, as many as the walk's `lead`. */
    private readonly commas: readonly number[],
  ) {}

  /** The text of field `k`, for `k` up to the walk's `lead` (undefined past the last field). */
  field(k: number): string | undefined {
    if (k >= this.fields) return undefined;
    if (k > this.commas.length || (k === this.commas.length && k < this.fields - 1))
      throw new RangeError(`field ${k} is past the walk's lead`);
    const from = this.from + (k === 0 ? 0 : this.commas[k - 1]! + 1);
    const to = k < this.commas.length ? this.from + this.commas[k]! : this.to;
    const raw = this.source.toString('utf8', from, to);
    return raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw;
  }

  /** Every field's text. */
  all(): string[] {
    return parseCsv(`${this.source.toString('utf8', this.from, this.to)}\n`).records[0] ?? [''];
  }
}

/**
 * The complete records of a CSV byte stream, a chunk's worth at a time, with the byte offset just
 * after the last of them (an unterminated last record, torn by a crash, is left out, as `parseCsv`
 * does). Fields are not decoded: only the offsets of the first `lead` commas are noted, so that
 * `field(k)` for `k < lead` costs one small decode. Quoted fields may hold commas and line breaks;
 * doubled quotes toggle the quoted state twice, so counting quotes tells inside from outside. Much
 * cheaper than `scanCsv` where a file is only copied or a few of its columns are read.
 */
export async function* walkCsv(
  chunks: AsyncIterable<Buffer>,
  lead = 0,
): AsyncGenerator<{ records: CsvRecord[]; end: number }> {
  const walker = new CsvWalker(lead);
  for await (const chunk of chunks) {
    const records = walker.push(chunk);
    yield { records, end: walker.end };
  }
}

/** `walkCsv`'s state between chunks (a plain method: V8 optimises its loop better than a generator's). */
class CsvWalker {
  #quoted = false;
  #commas: number[] = [];
  #fields = 1;
  /** The current record's bytes from earlier chunks, and how many there are. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #last = 0;
  /** Offset just after the last complete record. */
  end = 0;

  constructor(private readonly lead: number) {}

  push(chunk: Buffer): CsvRecord[] {
    const records: CsvRecord[] = [];
    const lead = this.lead;
    let quoted = this.#quoted;
    let fields = this.#fields;
    let last = this.#last;
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      const before = last;
      last = c;
      if (c === QUOTE) quoted = !quoted;
      else if (quoted) continue;
      else if (c === COMMA) {
        if (this.#commas.length < lead) this.#commas.push(this.#heldBytes + i - start);
        fields++;
      } else if (c === LF) {
        const crlf = before === CR;
        const terminator = crlf ? CRLF_BYTES : LF_BYTES;
        if (this.#held.length === 0) {
          records.push(new CsvRecord(chunk, start, crlf ? i - 1 : i, terminator, fields, this.#commas));
        } else {
          // Spanning chunks: copied whole. Its CR may be the last byte of the chunk before.
          const bytes = Buffer.concat([...this.#held, chunk.subarray(start, i)]);
          const to = bytes.length - (crlf ? 1 : 0);
          records.push(new CsvRecord(bytes, 0, to, terminator, fields, this.#commas));
        }
        this.end += this.#heldBytes + i + 1 - start;
        this.#held = [];
        this.#heldBytes = 0;
        this.#commas = [];
        start = i + 1;
        fields = 1;
      }
    }
    if (start < chunk.length) {
      this.#held.push(chunk.subarray(start));
      this.#heldBytes += chunk.length - start;
    }
    this.#quoted = quoted;
    this.#fields = fields;
    this.#last = last;
    return records;
  }
}

/**
 * The records of a CSV byte stream, each padded with empty fields to `width`, the first (the header)
 * left out: what widening a file's header needs for every row below it. Bytes are copied as they are,
 * not parsed and formatted again; a record only gets `,` × (the fields it lacks) before its terminator.
 */
export async function* padRecords(chunks: AsyncIterable<Buffer>, width: number): AsyncGenerator<Buffer> {
  let header = true;
  const pads = new Map<number, Buffer>();
  for await (const { records } of walkCsv(chunks)) {
    const rows = header ? records.slice(1) : records;
    if (records.length > 0) header = false;
    if (rows.length === 0) continue;
    let size = 0;
    for (const r of rows) size += r.to - r.from + Math.max(0, width - r.fields) + r.terminator.length;
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    for (const r of rows) {
      at += r.source.copy(out, at, r.from, r.to);
      if (r.fields < width) {
        const n = width - r.fields;
        let pad = pads.get(n);
        if (!pad) pads.set(n, (pad = Buffer.from(','.repeat(n))));
        at += pad.copy(out, at);
      }
      at += r.terminator.copy(out, at);
    }
    yield out;
  }
}
