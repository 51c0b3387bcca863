/**
 * One harness per sink for the contract suite: a real destination (a PostgreSQL database, a SQLite
 * file, CSV and JSON files, a TCP listener, an HTTP server, a recording logger) and a reader that
 * reads back what arrived, in one of two shapes: the events in arrival order (event sinks) or one
 * row per aggregate (state sinks).
 */
import Database from 'better-sqlite3';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { EventIssuer } from '../../src/core/event.js';
import { parseCsv } from '../../src/plugins/csv/rfc4180.js';
import { HEAD_TABLE, TABLES_TABLE } from '../../src/plugins/sql/bookkeeping.js';
import type { PluginInput, PluginKind, PluginLogger } from '../../src/plugins/index.js';
import { type LogLine, httpReceiver, recordingLogger, tcpReceiver } from './fixtures.js';
import type { PgServer } from './pg-harness.js';

/** One delivered event as read back from an event sink (CSV rows also carry the state). */
export interface Delivered {
  readonly aggregate_type: string;
  readonly aggregate_id: string;
  readonly version: number;
  readonly event_type: string;
  readonly event_id: string;
  readonly payload?: Record<string, string>;
  readonly state?: Record<string, string>;
  /** Who wrote it, as the record says (record sinks) or as CSV's `updated_by` text has it. */
  readonly issued_by?: EventIssuer;
  readonly updated_by?: string;
}

/** One mirrored row (state sinks), keyed `type/id`. */
export interface Row {
  readonly version: number;
  readonly state: Record<string, string>;
  readonly created_by: string;
  readonly updated_by: string;
}

export type Observed = { kind: 'events'; events: Delivered[] } | { kind: 'rows'; rows: Map<string, Row> };

export interface Fixture {
  readonly input: PluginInput;
  /** The host's logger (the log sink writes there). */
  readonly logger?: PluginLogger;
  read(): Promise<Observed>;
  teardown(): Promise<void>;
}

export interface SinkHarness {
  readonly label: string;
  readonly kind: PluginKind;
  /** A file sink: each event is written once, even when delivered again (after a crash, a replay). */
  readonly once?: boolean;
  setup(): Promise<Fixture>;
}

/** The SQL sinks' own tables (sql/bookkeeping.ts): not aggregate rows. */
const BOOKKEEPING: ReadonlySet<string> = new Set([HEAD_TABLE, TABLES_TABLE]);
const FIXED_SQL = new Set(['id', 'version', 'created_at', 'created_by', 'updated_at', 'updated_by']);

function rowOf(r: Record<string, unknown>): Row {
  const state: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) if (!FIXED_SQL.has(k) && v !== null) state[k] = String(v);
  return {
    version: Number(r.version),
    state,
    created_by: String(r.created_by),
    updated_by: String(r.updated_by),
  };
}

const tempDir = () => mkdtemp(path.join(os.tmpdir(), 'edbx-plugin-'));

function eventOf(line: string): Delivered {
  const e = JSON.parse(line) as Delivered & { metadata: { event_id: string; issued_by: EventIssuer } };
  return { ...e, event_id: e.metadata.event_id, issued_by: e.metadata.issued_by };
}

/** Split concatenated pretty JSON documents (each ends with a `}` line). */
export const splitPretty = (text: string): string[] =>
  text.split(/(?<=^\})\n/m).filter((s) => s.trim() !== '');

export function harnesses(pgServer: () => PgServer): SinkHarness[] {
  return [
    {
      label: 'postgres',
      kind: 'postgres',
      async setup() {
        const url = await pgServer().createDatabase();
        return {
          input: { connection: url },
          async read() {
            const c = new pg.Client({ connectionString: url });
            await c.connect();
            try {
              const tables = await c.query<{ table_name: string }>(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
              );
              const rows = new Map<string, Row>();
              for (const { table_name } of tables.rows) {
                if (BOOKKEEPING.has(table_name)) continue;
                // Qualified: a table named like a catalog (`pg_class`) is found in pg_catalog first.
                const res = await c.query(`SELECT * FROM public."${table_name}"`);
                for (const r of res.rows as Array<Record<string, unknown>>)
                  rows.set(`${table_name}/${String(r.id)}`, rowOf(r));
              }
              return { kind: 'rows', rows };
            } finally {
              await c.end();
            }
          },
          teardown: async () => undefined,
        };
      },
    },
    {
      label: 'sqlite',
      kind: 'sqlite',
      async setup() {
        const dir = await tempDir();
        const file = path.join(dir, 'mirror', 'state.db');
        return {
          input: { path: file },
          async read() {
            const db = new Database(file, { readonly: true });
            try {
              const rows = new Map<string, Row>();
              const tables = db
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .all() as Array<{
                name: string;
              }>;
              for (const { name } of tables) {
                if (BOOKKEEPING.has(name)) continue;
                for (const r of db.prepare(`SELECT * FROM "${name}"`).all() as Array<Record<string, unknown>>)
                  rows.set(`${name}/${String(r.id)}`, rowOf(r));
              }
              return { kind: 'rows', rows };
            } finally {
              db.close();
            }
          },
          teardown: () => rm(dir, { recursive: true, force: true }),
        };
      },
    },
    {
      label: 'csv',
      kind: 'csv',
      once: true,
      async setup() {
        const dir = await tempDir();
        const out = path.join(dir, 'csv');
        return {
          input: { output_dir: out },
          async read() {
            const events: Delivered[] = [];
            let files: string[] = [];
            try {
              files = (await readdir(out)).filter((f) => f.endsWith('.csv'));
            } catch {
              // nothing written yet
            }
            for (const f of files) {
              const text = await readFile(path.join(out, f), 'utf8');
              const { records, end } = parseCsv(text);
              if (end !== text.length) throw new Error(`${f} ends with a partial record`);
              const [header, ...rows] = records;
              for (const r of rows) {
                if (r.length !== header!.length)
                  throw new Error(`${f}: a row has ${r.length} fields, the header ${header!.length}`);
                const cell = (c: string) => r[header!.indexOf(c)]!;
                const state: Record<string, string> = {};
                header!.forEach((c, i) => {
                  if (i >= 8 && r[i] !== '') state[c] = r[i]!;
                });
                events.push({
                  aggregate_type: f.slice(0, -4),
                  aggregate_id: cell('id'),
                  version: Number(cell('version')),
                  event_type: cell('event'),
                  event_id: cell('event_id'),
                  state,
                  updated_by: cell('updated_by'),
                });
              }
            }
            // One file per aggregate type: order across files is not defined, within a file it is.
            return { kind: 'events', events };
          },
          teardown: () => rm(dir, { recursive: true, force: true }),
        };
      },
    },
    {
      label: 'tcp',
      kind: 'tcp',
      async setup() {
        const rx = await tcpReceiver();
        return {
          input: { host: '127.0.0.1', port: rx.port },
          async read() {
            // The cursor moves once the kernel took the bytes; the receiver, in this same process,
            // reads them on a later turn of the event loop. Read once nothing arrived for a while.
            for (let seen = -1; seen !== rx.lines.length;) {
              seen = rx.lines.length;
              await new Promise((r) => setTimeout(r, 25));
            }
            return { kind: 'events', events: rx.lines.map(eventOf) };
          },
          teardown: () => rx.close(),
        };
      },
    },
    {
      label: 'http',
      kind: 'http',
      async setup() {
        const rx = await httpReceiver();
        return {
          input: { endpoint: rx.url, headers: ['Authorization=Bearer s3cret', 'X-Source=eventdbx'] },
          async read() {
            for (const q of rx.requests) {
              if (q.headers.authorization !== 'Bearer s3cret' || q.headers['x-source'] !== 'eventdbx')
                throw new Error('configured headers missing');
              if (q.headers['content-type'] !== 'application/json') throw new Error('not sent as JSON');
            }
            const answered = rx.requests.filter((q) => q.status < 300);
            answered.forEach((q, i) => {
              if (q.key !== rx.accepted[i]!.metadata.event_id)
                throw new Error('Idempotency-Key is not the event id');
            });
            const events = rx.accepted.map((e) => ({ ...e, event_id: e.metadata.event_id }));
            return { kind: 'events', events };
          },
          teardown: () => rx.close(),
        };
      },
    },
    ...[false, true].map((pretty): SinkHarness => ({
      label: pretty ? 'json --pretty' : 'json',
      kind: 'json',
      once: true,
      async setup() {
        const dir = await tempDir();
        const file = path.join(dir, 'out', 'events.json');
        return {
          input: { path: file, pretty },
          async read() {
            let text = '';
            try {
              text = await readFile(file, 'utf8');
            } catch {
              // nothing written yet
            }
            const docs = pretty ? splitPretty(text) : text.split('\n').filter((l) => l !== '');
            if (pretty && docs.some((d) => !d.includes('\n  "')))
              throw new Error('--pretty wrote unindented JSON');
            return { kind: 'events', events: docs.map(eventOf) };
          },
          teardown: () => rm(dir, { recursive: true, force: true }),
        };
      },
    })),
    {
      label: 'log',
      kind: 'log',
      async setup() {
        const logger = recordingLogger();
        return {
          input: { level: 'info', template: '{aggregate}|{id}|{event}|{version}' },
          logger,
          read: async () => ({
            kind: 'events',
            events: logger.lines
              .filter((l: LogLine) => l.level === 'info' && (l.obj as { plugin?: string }).plugin === 'log')
              .map((l) => {
                const [aggregate_type, aggregate_id, event_type, version] = l.msg.split('|') as [
                  string,
                  string,
                  string,
                  string,
                ];
                return {
                  aggregate_type,
                  aggregate_id,
                  event_type,
                  version: Number(version),
                  event_id: `${aggregate_type}/${aggregate_id}@${version}`,
                };
              }),
          }),
          teardown: async () => undefined,
        };
      },
    },
  ];
}
