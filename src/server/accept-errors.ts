/**
 * A listening server's failures to accept a connection. Node reports one as the server's 'error'
 * event (syscall `accept`), which with no listener would end the process: mostly EMFILE, the process
 * out of descriptors (libuv then closes the waiting connections at once; it reports only when it
 * cannot). Logged at warn level, collapsed like other repeated lines; any other error after listening
 * is thrown as before.
 */
import type net from 'node:net';
import { notedOpenFilesLimit } from '../core/errors.js';
import type { RepeatLog } from '../core/repeat-log.js';

/** Log `server`'s accept errors (once it listens) through `lines`; `channel` names it in each line. */
export function logAcceptErrors(
  server: net.Server,
  lines: Pick<RepeatLog<'warn'>, 'note'>,
  channel: 'http' | 'control',
): void {
  server.on('error', (e: NodeJS.ErrnoException) => {
    if (e.syscall !== 'accept') throw e;
    const out = e.code === 'EMFILE' || e.code === 'ENFILE';
    const limit = notedOpenFilesLimit();
    lines.note(`accept:${channel}:${e.code ?? e.message}`, {
      level: 'warn',
      fields: {
        channel,
        errno: e.code,
        ...(out ? { code: 'EDBX_ERR_TOO_MANY_OPEN_FILES' } : {}),
        ...(out && limit !== undefined ? { open_files_limit: limit } : {}),
      },
      msg: out
        ? `cannot accept a connection (${e.code}): the ${e.code === 'ENFILE' ? "system's table of open files is full" : `process has used up its open-files limit${limit === undefined ? '' : ` (${limit})`}`}; new connections are closed at once until descriptors are free: raise the limit (\`ulimit -n\`, \`LimitNOFILE=\`) or lower max_connections`
        : `cannot accept a connection: ${e.message}`,
    });
  });
}
