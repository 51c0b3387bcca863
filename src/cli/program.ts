/**
 * The command line that `eventdbx` (main.ts) loads. A declarative table of commands and flags (exactly the spec's), thin
 * handlers that run store operations, one error → exit code mapping. Heavy modules load lazily so
 * `--help` is instant.
 */
import { Command, CommanderError, Option } from 'commander';
import { toEventDbxError } from '../core/errors.js';
import { reportError } from './report.js';

import { VERSION } from '../version.js';
import { PLUGIN_COMMANDS } from './commands/plugin.js';
import { SCHEMA_COMMANDS } from './commands/schema.js';
import { CHECKED_DATA_DIR, type CommandSpec, type Flag, WINDOW_FLAGS, dataDirPath } from './spec.js';

const AGG: Flag[] = [
  { flags: '--aggregate <type>', help: 'aggregate type, e.g. patient', required: true },
  { flags: '--aggregate-id <id>', help: 'aggregate id, e.g. p-001', required: true },
];
const COMMENT: Flag = { flags: '--comment <text>', help: 'why (recorded in the audit log)' };

const AGGREGATE_COMMANDS: CommandSpec[] = [
  {
    name: 'apply',
    op: 'aggregate.apply',
    help: 'append an event to an aggregate',
    flags: [
      ...AGG,
      { flags: '--event <name>', help: 'event type, e.g. patient-added', required: true },
      { flags: '--field <KEY=VALUE>', help: 'payload field (repeatable)', repeat: true },
      { flags: '--expected-version <n>', help: 'fail unless the aggregate is at version n (0 = new)' },
      { flags: '--event-id <id>', help: 'client event id: retrying the same event returns the original' },
      { flags: '--stage', help: 'stage the event; `aggregate commit` appends all staged events atomically' },
    ],
  },
  {
    name: 'list',
    op: 'aggregate.list',
    help: 'list aggregates with version, Merkle root and archive status',
    flags: [{ flags: '--type <type>', help: 'only this aggregate type' }, ...WINDOW_FLAGS],
  },
  {
    name: 'get',
    op: 'aggregate.get',
    help: 'show the state of an aggregate (now, or at a version)',
    flags: [
      ...AGG,
      { flags: '--version <u64>', help: 'state at this version' },
      { flags: '--include-events', help: 'also list the events' },
    ],
  },
  {
    name: 'replay',
    op: 'aggregate.replay',
    help: 'list the events of an aggregate in order',
    flags: [
      ...AGG,
      { flags: '--skip <n>', help: 'skip the first n events' },
      { flags: '--take <n>', help: 'show at most n events' },
    ],
  },
  {
    name: 'verify',
    op: 'aggregate.verify',
    help: 'recompute Merkle hashes from the stored events (all aggregates and the ledger when none is given)',
    flags: [
      { flags: '--aggregate <type>', help: 'aggregate type' },
      { flags: '--aggregate-id <id>', help: 'aggregate id' },
      CHECKED_DATA_DIR,
    ],
  },
  {
    name: 'snapshot',
    op: 'aggregate.snapshot',
    help: 'store the current state as a snapshot',
    flags: [...AGG, COMMENT],
  },
  {
    name: 'archive',
    op: 'aggregate.archive',
    help: 'move an aggregate to long-term storage (appends refused)',
    flags: [...AGG, COMMENT],
  },
  {
    name: 'restore',
    op: 'aggregate.restore',
    help: 'bring an archived aggregate back',
    flags: [...AGG, COMMENT],
  },
  {
    name: 'commit',
    op: 'aggregate.commit',
    help: 'append all staged events atomically (all or none)',
    flags: [{ flags: '--discard', help: 'drop every staged event instead, appending none' }],
  },
];

const TOKEN_COMMANDS: CommandSpec[] = [
  {
    name: 'generate',
    op: 'token.generate',
    help: 'issue a token for one person (shown once)',
    flags: [
      {
        flags: '--group <name>',
        help: 'Unix-style group, e.g. admin or doctors (not local: it marks CLI writes made without a token)',
        required: true,
      },
      { flags: '--user <name>', help: 'the person, e.g. jane', required: true },
      { flags: '--expiration <secs>', help: 'lifetime in seconds (default: no expiry)' },
      { flags: '--limit <writes>', help: 'number of writes allowed (default: unlimited)' },
      { flags: '--keep-alive', help: 'each use extends the expiry by --expiration seconds' },
      { flags: '--read-only', help: 'the token cannot write' },
      {
        flags: '--aggregate <type[/id]>',
        help: 'limit the token to this aggregate type or instance (repeatable)',
        repeat: true,
      },
      {
        flags: '--audit',
        help: 'the token may read the audit log (only the entries about its --aggregate scopes, if any)',
      },
    ],
  },
  {
    name: 'list',
    op: 'token.list',
    help: 'list tokens with status, expiry and remaining writes',
    flags: WINDOW_FLAGS,
  },
  {
    name: 'revoke',
    op: 'token.revoke',
    help: 'revoke a token immediately',
    flags: [{ flags: '--token <value>', help: 'the token, or its id from `token list`', required: true }],
  },
  {
    name: 'refresh',
    op: 'token.refresh',
    help: 'extend the lifetime and/or write allowance of a token',
    flags: [
      { flags: '--token <value>', help: 'the token, or its id from `token list`', required: true },
      { flags: '--expiration <secs>', help: 'new lifetime in seconds from now' },
      { flags: '--limit <writes>', help: 'new number of writes allowed' },
    ],
  },
];

const AUDIT_COMMANDS: CommandSpec[] = [
  {
    name: 'list',
    op: 'audit.list',
    help: 'list administrative actions (tokens, schemas, config, plugins, archive)',
    flags: [
      { flags: '--since <date>', help: 'only entries at or after this ISO date' },
      {
        flags: '--from-position <n>',
        help: 'only entries at or after this ledger position (after a backup: its events + 1)',
      },
      CHECKED_DATA_DIR,
    ],
  },
  {
    name: 'verify',
    op: 'audit.verify',
    help: 'recompute the audit log Merkle tree',
    flags: [CHECKED_DATA_DIR],
  },
];

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function addFlags(cmd: Command, flags: readonly Flag[]): Command {
  for (const f of flags) {
    const o = new Option(f.flags, f.required ? `${f.help} (required)` : f.help);
    if (f.repeat) o.argParser(collect).default([]);
    else if (f.parse) o.argParser(f.parse);
    if (f.required) o.makeOptionMandatory();
    cmd.addOption(o);
  }
  return withConfig(cmd.option('--json', 'print JSON for scripts'));
}

/** `--config` is accepted before the command (program option) and after it (every command). */
const CONFIG_HELP = 'configuration file (default ./.eventdbx.json or $EVENTDBX_CONFIG)';
const withConfig = (cmd: Command): Command => cmd.option('--config <path>', CONFIG_HELP);
const globalConfig = (cmd: Command) =>
  (cmd.opts().config ?? cmd.optsWithGlobals().config) as string | undefined;

function opCommand(parent: Command, spec: CommandSpec): void {
  const command = parent.command(spec.name).description(spec.help);
  for (const a of spec.args ?? []) command.argument(a.required ? `<${a.name}>` : `[${a.name}]`);
  addFlags(command, spec.flags).action(async (...params: unknown[]) => {
    // commander passes the positional arguments first, then the options and the command.
    const cmd = params.at(-1) as Command;
    const opts = params.at(-2) as Record<string, unknown>;
    const positional = Object.fromEntries((spec.args ?? []).map((a, i) => [a.key ?? a.name, params[i]]));
    const { runOp } = await import('./run.js');
    process.exitCode = await runOp(spec.op, { ...opts, ...positional }, globalConfig(cmd));
  });
}

function serverCommands(program: Command): void {
  const DATA_DIR: Flag = {
    flags: '--data-dir <path>',
    help: 'data directory of the server (default: config, else ./.eventdbx)',
    parse: dataDirPath,
  };
  // `restart` keeps the port and restriction the running server's command line gave it.
  const startFlags = (c: Command, kept = '') =>
    addFlags(c, [
      { flags: '--port <u16>', help: `HTTP port (default: ${kept}config, else 7070)` },
      DATA_DIR,
      { flags: '--foreground', help: 'run in this terminal instead of as a daemon' },
      {
        flags: '--restrict [mode]',
        help: `schema enforcement: true, strict, or false (default: ${kept}config, else true)`,
      },
      {
        flags: '--consume-backup',
        help: 'start on a backup directory itself (it becomes the live store and is no longer a backup)',
      },
    ]);
  const lifecycle = async (name: string, opts: Record<string, unknown>, cmd: Command) => {
    const m = await import('./server-commands.js');
    process.exitCode = await m.lifecycle(name, opts, globalConfig(cmd));
  };
  startFlags(program.command('start').description('start the server (a daemon unless --foreground)')).action(
    (o, c: Command) => lifecycle('start', o, c),
  );
  addFlags(program.command('stop').description('stop the running server gracefully'), [DATA_DIR]).action(
    (o, c: Command) => lifecycle('stop', o, c),
  );
  addFlags(
    program
      .command('status')
      .description('port, PID, uptime, restriction and event count of the server (exit 1 when none runs)'),
    [DATA_DIR],
  ).action((o, c: Command) => lifecycle('status', o, c));
  startFlags(
    program
      .command('restart')
      .description(
        'stop the server (if running) and start it again; --port and --restrict given to the running server are kept, the rest is read from the config again',
      ),
    "the running server's if given to its start, else ",
  ).action((o, c: Command) => lifecycle('restart', o, c));
  addFlags(
    program.command('destroy').description('remove the PID file, data directory and configuration file'),
    [DATA_DIR, { flags: '--yes', help: 'do not ask for confirmation' }],
  ).action((o, c: Command) => lifecycle('destroy', o, c));
}

function build(): Command {
  const program = new Command('eventdbx')
    .description('EventDBX: an event-sourced, write-side database')
    .version(VERSION, '-V, --version')
    .enablePositionalOptions()
    .option('--config <path>', 'configuration file (default ./.eventdbx.json or $EVENTDBX_CONFIG)')
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      // One line, coded like every other error: `error: unknown option '--bogus' … [EDBX_ERR_USAGE]`.
      outputError: (s, write) => write(`${s.trimEnd()} (run with --help for usage) [EDBX_ERR_USAGE]\n`),
    });

  const aggregate = program
    .command('aggregate')
    .description('append, read, verify, snapshot and archive aggregates');
  for (const spec of AGGREGATE_COMMANDS) {
    addFlags(aggregate.command(spec.name).description(spec.help), spec.flags).action(
      async (opts, cmd: Command) => {
        const { runOp } = await import('./run.js');
        process.exitCode = await runOp(spec.op, opts, cmd.optsWithGlobals().config as string | undefined);
      },
    );
  }

  for (const [group, help, specs] of [
    ['token', 'issue, list, revoke and refresh access tokens', TOKEN_COMMANDS],
    ['audit', 'the tamper-evident log of administrative actions', AUDIT_COMMANDS],
    ['schema', 'restrict which events and fields aggregates accept', SCHEMA_COMMANDS],
    ['plugin', 'keep external systems in sync with every committed event', PLUGIN_COMMANDS],
  ] as const) {
    const parent = program.command(group).description(help);
    for (const spec of specs) opCommand(parent, spec);
  }

  const checkpoint = addFlags(
    program.command('checkpoint').description('print the latest signed checkpoint of the ledger'),
    [],
  ).action(async (opts, cmd: Command) => {
    const { runOp } = await import('./run.js');
    process.exitCode = await runOp('checkpoint.show', opts, globalConfig(cmd));
  });
  addFlags(checkpoint.command('verify').description('prove the current history extends a saved checkpoint'), [
    {
      flags: '--from <file>',
      help: 'a checkpoint saved earlier (file with the signed note, or - for stdin)',
      required: true,
    },
    {
      flags: '--public-key <file>',
      help: 'check the signature with this key (PEM saved from `checkpoint public-key`), not the store key',
    },
    CHECKED_DATA_DIR,
  ]).action(async (opts, cmd: Command) => {
    const { runOp } = await import('./run.js');
    const { readNote, readPublicKey } = await import('./notes.js');
    const { publicKey, ...rest } = opts as Record<string, unknown>;
    process.exitCode = await runOp(
      'checkpoint.verify',
      {
        ...rest,
        note: await readNote(String(opts.from)),
        ...(publicKey === undefined ? {} : { public_key: await readPublicKey(String(publicKey)) }),
      },
      globalConfig(cmd),
    );
  });
  addFlags(
    checkpoint.command('public-key').description('print the public key auditors use to verify checkpoints'),
    [],
  ).action(async (opts, cmd: Command) => {
    const { runOp } = await import('./run.js');
    process.exitCode = await runOp('checkpoint.public-key', opts, globalConfig(cmd));
  });

  addFlags(
    program
      .command('backup')
      .argument('<dir>', 'a directory that does not exist yet (or an empty one)')
      .description(
        'copy the whole store, as of one point in time, into a new directory (online: writes go on)',
      ),
    [
      {
        flags: '--data-dir <path>',
        help: 'data directory to back up (default: config, else ./.eventdbx)',
        parse: dataDirPath,
      },
    ],
  ).action(async (dir: string, opts: Record<string, unknown>, cmd: Command) => {
    const { runOp } = await import('./run.js');
    const { resolve } = await import('node:path');
    // Resolved here: a running server writes the backup, from its own working directory.
    process.exitCode = await runOp('backup', { ...opts, dir: resolve(dir) }, globalConfig(cmd));
  });

  serverCommands(program);

  addFlags(
    program
      .command('config')
      .description('persist configuration; the first call must include --master-key and --dek')
      .option('--port <u16>', 'HTTP port (default 7070)')
      .option('--data-dir <path>', 'data directory (default ./.eventdbx)', dataDirPath)
      .option(
        '--master-key <secret>',
        'master key (stored in the 0600 config file; or use EVENTDBX_MASTER_KEY)',
      )
      .option('--dek <secret>', 'data encryption key (or use EVENTDBX_DEK)')
      .option('--memory-threshold <usize>', 'aggregate states kept in memory (LRU entries, within 256 MiB)')
      .option(
        '--max-connections <n>',
        'open HTTP connections at most; one over it is closed at once (default 1024)',
      )
      .option(
        '--restrict <mode>',
        'schema enforcement of a start without --restrict: true, strict or false (default true)',
      ),
    [],
  ).action(async (opts, cmd: Command) => {
    const { configCommand } = await import('./config-command.js');
    process.exitCode = await configCommand(opts, globalConfig(cmd));
  });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = build();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; usage errors (unknown flag, missing value) exit 2. Commander printed the line.
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version'
        ? 0
        : 2;
    }
    return reportError(toEventDbxError(e));
  }
}
