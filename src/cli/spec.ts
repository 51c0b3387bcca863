/** Declarative command tables: each command is flags (exactly the spec's) and the operation it runs. */
import { err } from '../core/errors.js';

export interface Flag {
  /** Commander flag syntax, e.g. `--aggregate <type>` or `--stage`. */
  readonly flags: string;
  readonly help: string;
  /** Repeatable flag collected into an array. */
  readonly repeat?: boolean;
  readonly required?: boolean;
  /** Convert the value where the CLI runs (e.g. resolve a relative path against its cwd). */
  readonly parse?: (value: string) => unknown;
}

/** `--skip` and `--take` of every listing (`aggregate list`, `token list`, `schema list`). */
export const WINDOW_FLAGS: readonly Flag[] = [
  { flags: '--skip <n>', help: 'skip the first n' },
  { flags: '--take <n>', help: 'show at most n' },
];

export interface PositionalArg {
  readonly name: string;
  /** Key in the operation's arguments (default: name). */
  readonly key?: string;
  readonly required: boolean;
}

export interface CommandSpec {
  readonly name: string;
  /** Operation id in OPS (src/cli/ops.ts), run locally or through the server's control socket. */
  readonly op: string;
  readonly help: string;
  readonly flags: readonly Flag[];
  readonly args?: readonly PositionalArg[];
}

/**
 * The value of `--data-dir`: an empty one (`--data-dir "$DIR"` with DIR unset) would resolve to the
 * current directory, where `start` would mix a store into whatever is there and `destroy` would
 * remove it: refused on the command line, before any command runs.
 */
export function dataDirPath(value: string): string {
  if (value === '')
    throw err('EDBX_ERR_INVALID_ARGUMENT', { name: '--data-dir', value, reason: 'use a non-empty path' });
  return value;
}

/**
 * `--data-dir` of the commands that check a store (`aggregate verify`, `audit verify`, `checkpoint
 * verify`, and `audit list` to read an old data dir's log): the store of another data dir than the
 * configured one, as `backup --data-dir` (QA disaster-recovery finding 6). They say which they checked.
 */
export const CHECKED_DATA_DIR: Flag = {
  flags: '--data-dir <path>',
  help: 'data directory of the store (default: config, else ./.eventdbx)',
  parse: dataDirPath,
};
