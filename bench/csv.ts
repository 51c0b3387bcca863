/**
 * CSV sink benchmark: the cost of widening a large file's header (a new field appears: every row is
 * rewritten, padded, into a copy that replaces the file), next to a plain copy of the same file in
 * the same run, and the cost of opening the file (the sink reads it once to skip events it holds).
 * Prints figures; never pass/fail. Run: `npx vite-node bench/csv.ts` (BENCH_MB=16 for a quick pass).
 */
import { createWriteStream } from 'node:fs';
import { copyFile, mkdtemp, open, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { formatRecord } from '../src/plugins/csv/rfc4180.js';
import { CSV_COLUMNS, CsvSink } from '../src/plugins/csv/sink.js';
import type { DeliveryItem } from '../src/plugins/types.js';

const MB = Number(process.env.BENCH_MB ?? 160);
const FIELDS = 12;

/** A sink-shaped file of about `MB` megabytes: the columns, then fields with quotes and commas. */
async function writeCsv(file: string): Promise<number> {
  const out = createWriteStream(file);
  const fields = Array.from({ length: FIELDS }, (_, i) => `field_${i}`);
  out.write(formatRecord([...CSV_COLUMNS, ...fields]));
  let bytes = 0;
  let rows = 0;
  while (bytes < MB * 1e6) {
    const at = '2026-11-26T12:00:00.000Z';
    const cells = [`p-${rows}`, '1', 'patient-added', `e-${rows}`, at, 'doctors/ana', at, 'doctors/ana'];
    for (let f = 0; f < FIELDS; f++) cells.push(f % 3 === 0 ? `say "hi", ${rows}` : `value ${f} of ${rows}`);
    const line = formatRecord(cells);
    bytes += line.length;
    rows++;
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return rows;
}

/** A delivery of one new aggregate's first event, with one more field when `extra` is given. */
function item(position: number, extra?: string): DeliveryItem {
  const at = '2026-11-26T12:00:00.000Z';
  const by = { group: 'doctors', user: 'ana' };
  const state: Record<string, string> = { name: `patient ${position}` };
  if (extra !== undefined) state[extra] = 'x';
  return {
    record: {
      aggregate_type: 'patient',
      aggregate_id: `p-${position}`,
      event_type: 'patient-added',
      payload: state,
      metadata: { event_id: `e-${position}`, created_at: at, issued_by: by },
      version: 1,
      position,
      hash: '',
      merkle_root: '',
    },
    row: { state, created_at: at, created_by: by },
  };
}

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-csv-bench-'));
  try {
    const file = path.join(dir, 'patient.csv');
    const rows = await writeCsv(file);
    const size = (await stat(file)).size;
    // Durable before timing: the sink's open syncs the file, which would otherwise flush it all.
    const fh = await open(file, 'r+');
    await fh.sync();
    await fh.close();
    console.log(
      `EventDBX CSV sink benchmark: ${rows.toLocaleString('en-US')} rows, ${(size / 1e6).toFixed(0)} MB\n`,
    );
    let t0 = performance.now();
    await copyFile(file, path.join(dir, 'copy.csv'));
    const copyMs = performance.now() - t0;
    await rm(path.join(dir, 'copy.csv'));
    const sink = new CsvSink({ output_dir: dir });
    t0 = performance.now();
    await sink.deliver([item(rows + 1)]);
    const openMs = performance.now() - t0;
    t0 = performance.now();
    await sink.deliver([item(rows + 2, 'new_field')]);
    const widenMs = performance.now() - t0;
    await sink.close();
    const row = (name: string, ms: number) =>
      console.log(`${name.padEnd(48)} ${ms.toFixed(0).padStart(7)} ms`);
    row('open (read once to skip what the file holds)', openMs);
    row('widen the header for a new field (rewrite)', widenMs);
    row('  plain copy of the same file (copyFile)', copyMs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
