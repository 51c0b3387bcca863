/** Operation and renderer types shared by every command group. */
import type { SecureStore } from '../../store/secure.js';
import type { WriteContext } from '../../store/types.js';

export type OpArgs = Record<string, unknown>;

/**
 * A store operation behind a CLI command: runs on the CLI's own store or, while a server runs, on the
 * server's store through the control socket. Returns a JSON-able result (the --json output).
 * `signal` (on the server: aborted when the CLI goes away) stops the long reads; writes ignore it.
 */
export type Op = (
  secure: SecureStore,
  args: OpArgs,
  ctx: WriteContext,
  progress?: (done: number, total: number) => void,
  signal?: AbortSignal,
) => Promise<unknown>;

/** Human-readable rendering of an operation's result. */
export type Renderer = (result: Record<string, unknown>) => string;

/**
 * An operation whose answer is one long list (`aggregate list`, `aggregate replay`, `token list`,
 * `schema list`): read a page at a time and printed as it comes, on the CLI's own store or through the
 * server, so neither side holds the whole list. The --json output is `{"<key>": [...items]}`, as one result holding the list.
 */
export interface Listing {
  readonly key: string;
  readonly pages: (
    secure: SecureStore,
    args: OpArgs,
    signal?: AbortSignal,
  ) => AsyncIterable<readonly unknown[]>;
}
