/**
 * File descriptors for HTTP connections. Each connection holds one, and so does every file the store,
 * its plugins and its commands open: a flood of idle connections that takes the last one makes the
 * store's next new file (a write-ahead log, a table) fail, and from then on it refuses every write
 * until a restart. So the server keeps part of its open-files limit for them (reservedDescriptors)
 * and caps connections at the rest: `max_connections` or fewer (connectionBudget). It refuses to start
 * when that leaves fewer than MIN_CONNECTIONS, and checks again every minute, since the store keeps
 * every one of its table files open (the binding offers no `max_open_files`: RocksDB's default,
 * unbounded) and so needs more descriptors as it grows.
 */
import { readdir } from 'node:fs/promises';
import type net from 'node:net';
import { type EventDbxError, err } from '../core/errors.js';
import { listConfigs } from '../plugins/repository.js';
import type { EventStore } from '../store/index.js';

/** Fewer connections than this once the reserve is kept, and the server does not start. */
export const MIN_CONNECTIONS = 16;
/**
 * Node and its threads (event loops, pipes), stdio, the log, the control socket, the store's
 * write-ahead log, MANIFEST, LOCK and acknowledged-head, a log reopened by SIGHUP: an idle server
 * with no plugin measured 35.
 */
const PROCESS_RESERVE = 64;
/** CLI commands on the control socket at once, each with a connection and what it reads. */
const COMMAND_RESERVE = 16;
/**
 * Each plugin: its file, a SQLite database with its -wal and -shm, a socket or two (5 plugins of each
 * kind measured 3 each). A CSV plugin keeps a file open per aggregate type it writes besides.
 */
const PLUGIN_RESERVE = 8;
/** Table files flushes and compactions may add before the next check, and the logs they switch to. */
const TABLE_GROWTH = 64;
/** Table files are counted in steps of this many, so a compaction's few do not move the cap. */
const TABLE_STEP = 16;
/** How often a running server counts again (the store grows; plugins are added while it runs). */
export const DESCRIPTOR_CHECK_MS = 60_000;

/** What the server's descriptors besides its connections depend on. */
export interface DescriptorUse {
  /** The store's table files (`*.sst`): RocksDB keeps each one open. */
  readonly tables: number;
  /** Plugins configured. */
  readonly plugins: number;
}

/**
 * The descriptors kept from connections: the process's own, the CLI's commands, each plugin's, and
 * twice the store's tables (a backup writes a copy of the store, whose tables the process opens too)
 * with room for more.
 *
 * @example
 * reservedDescriptors({ tables: 0, plugins: 0 }); // 144
 */
export function reservedDescriptors(use: DescriptorUse): number {
  const tables = Math.ceil(use.tables / TABLE_STEP) * TABLE_STEP;
  return PROCESS_RESERVE + COMMAND_RESERVE + PLUGIN_RESERVE * use.plugins + 2 * tables + TABLE_GROWTH;
}

export interface ConnectionBudget {
  /** `max_connections` as configured. */
  readonly configured: number;
  /** The open-files limit; undefined when unknown (not Linux) or unlimited: nothing is kept then. */
  readonly limit: number | undefined;
  readonly use: DescriptorUse;
  readonly reserved: number;
  /** The cap in force: the configured one, or what the limit leaves (at least 1). */
  readonly effective: number;
}

/** The cap on connections that `limit` leaves once the reserve for `use` is kept. */
export function connectionBudget(
  configured: number,
  limit: number | undefined,
  use: DescriptorUse,
): ConnectionBudget {
  const reserved = reservedDescriptors(use);
  const effective = limit === undefined ? configured : Math.max(1, Math.min(configured, limit - reserved));
  return { configured, limit, use, reserved, effective };
}

/** `n table files`, in the singular for one. */
export const tableFiles = (n: number): string => `${n} table file${n === 1 ? '' : 's'}`;

/** The limit to allow `connections` with this reserve. */
const limitFor = (b: ConnectionBudget, connections: number): number => b.reserved + connections;

/** The refusal of a start whose limit leaves too few connections (fewer than MIN_CONNECTIONS, or than configured). */
export function tooFewDescriptors(b: ConnectionBudget): EventDbxError | undefined {
  if (b.limit === undefined) return undefined;
  const floor = Math.min(MIN_CONNECTIONS, b.configured);
  const left = b.limit - b.reserved;
  if (left >= floor) return undefined;
  return err('EDBX_ERR_TOO_MANY_OPEN_FILES', {
    start: true,
    limit: b.limit,
    reserved: b.reserved,
    tables: tableFiles(b.use.tables),
    plugins: b.use.plugins,
    left: Math.max(0, left),
    floor,
    needed: limitFor(b, floor),
    wanted: limitFor(b, b.configured),
    configured: b.configured,
  });
}

/** The log line of a cap below the configured one (undefined when it is not), saying why and what to raise. */
export function loweredLine(b: ConnectionBudget, was?: number): { fields: object; msg: string } | undefined {
  if (b.limit === undefined || b.effective >= b.configured) return undefined;
  const wanted = limitFor(b, b.configured);
  const change =
    was === undefined
      ? `lowered from ${b.configured} to ${b.effective}`
      : `now ${b.effective} (was ${was}; configured ${b.configured})`;
  return {
    fields: {
      code: 'EDBX_ERR_TOO_MANY_OPEN_FILES',
      max_connections: b.configured,
      effective_max_connections: b.effective,
      open_files_limit: b.limit,
      reserved_descriptors: b.reserved,
      table_files: b.use.tables,
      plugins: b.use.plugins,
    },
    msg:
      `max_connections ${change}: ` +
      `the open-files limit (\`ulimit -n\`) is ${b.limit}, and the server keeps ${b.reserved} descriptors for ` +
      `its store (${tableFiles(b.use.tables)}), its plugins (${b.use.plugins}) and CLI commands; to allow all ` +
      `${b.configured}, raise the limit to at least ${wanted} (\`ulimit -n ${wanted}\` in the shell that ` +
      `starts eventdbx, or \`LimitNOFILE=${wanted}\` in its systemd unit)`,
  };
}

/** What the store in `dataDir` holds now that needs descriptors: its table files, its plugins. */
export async function descriptorUse(store: EventStore, dataDir: string): Promise<DescriptorUse> {
  const names = await readdir(dataDir);
  const plugins = await listConfigs(store);
  return { tables: names.filter((n) => n.endsWith('.sst')).length, plugins: plugins.length };
}

export interface DescriptorWatch {
  readonly server: net.Server;
  readonly log: { warn(fields: object, msg: string): void; info(fields: object, msg: string): void };
  /** The budget the server started with (its cap is `server.maxConnections`). */
  readonly budget: ConnectionBudget;
  readonly use: () => Promise<DescriptorUse>;
  readonly intervalMs?: number;
}

/**
 * Count again every `intervalMs` and move the cap (`server.maxConnections`) with the reserve: a cap
 * lowered is logged at warn level, one raised again at info. Connections already open stay open.
 * Returns what stops it.
 */
export function watchDescriptors(w: DescriptorWatch): () => void {
  let current = w.budget;
  let checking = false;
  const check = async () => {
    if (checking) return;
    checking = true;
    try {
      const next = connectionBudget(current.configured, current.limit, await w.use());
      if (next.effective === current.effective) return;
      w.server.maxConnections = next.effective;
      const lowered = next.effective < current.effective ? loweredLine(next, current.effective) : undefined;
      if (lowered) w.log.warn(lowered.fields, lowered.msg);
      else
        w.log.info(
          {
            max_connections: next.configured,
            effective_max_connections: next.effective,
            open_files_limit: next.limit,
          },
          `max_connections now ${next.effective} (was ${current.effective}; configured ${next.configured})`,
        );
      current = next;
    } catch {
      // A count that fails (the data dir unreadable for a moment, the store closing) keeps the cap.
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(() => void check(), w.intervalMs ?? DESCRIPTOR_CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
