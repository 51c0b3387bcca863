/**
 * `eventdbx plugin …` command table: the spec's sink commands and `map` with their flags exactly, the
 * delivery options every sink takes, and the management commands (list, status, replay, dead-letters,
 * retry, remove).
 */
import path from 'node:path';
import type { CommandSpec, Flag } from '../spec.js';

/** Paths are resolved where the CLI runs (the op may run inside a server with another cwd); an empty one is refused by the op. */
const resolvePath = (v: string): string => (v.trim() === '' ? v : path.resolve(v));

const DELIVERY: readonly Flag[] = [
  { flags: '--disable', help: 'keep the configuration but stop delivering (run without it to enable)' },
  {
    flags: '--from-now',
    help: 'deliver only events committed from now on (default: backfill from the first)',
  },
  {
    flags: '--max-attempts <n>',
    help: 'attempts per event before it is dead-lettered (default 10); an unreachable destination uses none',
  },
  { flags: '--backoff <ms>', help: 'first retry delay, doubled per attempt with jitter (default 500)' },
  { flags: '--backoff-max <ms>', help: 'longest retry delay (default 60000)' },
  {
    flags: '--on-failure <dead-letter|block>',
    help: 'after the last attempt: dead-letter the event and go on (default), or block and keep retrying',
  },
];
const TIMEOUT: Flag = { flags: '--timeout <ms>', help: 'connect/request timeout (default 10000)' };
const WRITE_TIMEOUT: Flag = {
  flags: '--timeout <ms>',
  help: 'longest a write may take before the plugin reports it stuck (default 10000)',
};
const NAME = [{ name: 'name', required: true }] as const;

const sink = (name: string, help: string, flags: readonly Flag[]): CommandSpec => ({
  name,
  op: `plugin.${name}`,
  help,
  flags: [...flags, ...DELIVERY],
});

export const PLUGIN_COMMANDS: CommandSpec[] = [
  {
    name: 'map',
    op: 'plugin.map',
    help: 'record the column type of a field for the SQL plugins (TEXT by default)',
    flags: [
      { flags: '--aggregate <name>', help: 'aggregate type, e.g. patient', required: true },
      { flags: '--field <field>', help: 'payload field, e.g. age', required: true },
      {
        flags: '--datatype <type>',
        help: 'text, varchar(n), smallint, integer, bigint, real, numeric[(p,s)], boolean, date, timestamp, time, json, uuid',
        required: true,
      },
      { flags: '--plugin <name>', help: 'override the type for this plugin only (postgres or sqlite)' },
    ],
  },
  sink('postgres', 'mirror aggregate state into PostgreSQL tables (one per aggregate type)', [
    {
      flags: '--connection <connection-string>',
      help: "postgres://user:pass@host:5432/db (percent-encode the password) or key=value pairs: host=db user=bob password='…' dbname=app (stored sealed)",
    },
    TIMEOUT,
  ]),
  sink('sqlite', 'mirror aggregate state into a local SQLite file', [
    { flags: '--path <file>', help: 'SQLite database file (created if missing)', parse: resolvePath },
    WRITE_TIMEOUT,
  ]),
  sink('csv', 'append state snapshots to <aggregate>.csv files', [
    { flags: '--output-dir <dir>', help: 'directory of the CSV files', parse: resolvePath },
    WRITE_TIMEOUT,
  ]),
  sink('tcp', 'write one JSON EventRecord line per event to a TCP socket', [
    { flags: '--host <hostname>', help: 'receiver host' },
    { flags: '--port <u16>', help: 'receiver port' },
    TIMEOUT,
  ]),
  sink('http', 'POST each EventRecord as JSON to an endpoint', [
    { flags: '--endpoint <url>', help: 'http:// or https:// URL' },
    {
      flags: '--header <KEY=VALUE>',
      help: 'request header (repeatable; values stored sealed); given headers replace the previous set',
      repeat: true,
    },
    { flags: '--no-header', help: 'remove every header' },
    {
      flags: '--keep-headers',
      help: 'keep the headers when --endpoint moves to another scheme, host or port (by default they are dropped: they may be credentials of the old receiver)',
    },
    TIMEOUT,
  ]),
  sink('json', 'append each EventRecord to a file (JSON Lines)', [
    { flags: '--path <file>', help: 'output file', parse: resolvePath },
    { flags: '--pretty', help: 'indented records (read back with `jq -c . <file>`)' },
    { flags: '--no-pretty', help: 'one record per line (JSON Lines, the default)' },
    WRITE_TIMEOUT,
  ]),
  sink('log', "emit a line per event through the server's log", [
    { flags: '--level <level>', help: 'log level of the lines: trace, debug, info, warn or error' },
    {
      flags: '--template <text>',
      help: 'line with {aggregate} {event} {id} {version}; default "aggregate={aggregate} id={id} event={event}"',
    },
    { flags: '--no-template', help: 'go back to the default line' },
  ]),
  { name: 'list', op: 'plugin.list', help: 'list plugins (secrets masked) and field mappings', flags: [] },
  {
    name: 'status',
    op: 'plugin.status',
    help: 'delivery state of each plugin: cursor, lag, retries, last error, dead letters',
    flags: [],
  },
  {
    name: 'replay',
    op: 'plugin.replay',
    help: 'deliver again from a position (default: the first event) to rebuild a destination',
    args: NAME,
    flags: [
      { flags: '--from <position>', help: 'first position to deliver again (default 1)' },
      {
        flags: '--rebuild',
        help: 'first clear the destination (drop its tables; move its files aside), then deliver everything: the repair after a restore from a backup',
      },
    ],
  },
  {
    name: 'dead-letters',
    op: 'plugin.dead-letters',
    help: 'list the events a plugin gave up on, with the reason',
    args: NAME,
    flags: [{ flags: '--take <n>', help: 'show at most n' }],
  },
  {
    name: 'retry',
    op: 'plugin.retry',
    help: 'deliver the dead letters again (and retry a blocked event now)',
    args: NAME,
    flags: [],
  },
  {
    name: 'remove',
    op: 'plugin.remove',
    help: 'remove a plugin with its cursor and dead letters',
    args: NAME,
    flags: [],
  },
];
