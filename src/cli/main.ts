#!/usr/bin/env node
/**
 * `eventdbx`. It reads the process's open-files limit first, while a descriptor is free to read it
 * with, then loads the command line (program.ts): loading opens its modules' files many at a time,
 * which a low limit (`ulimit -n 64`) cuts short, and that failure is reported here, with the limit and
 * what to raise it to, like any other error (never Node's stack trace). This module imports only the
 * few it needs for that.
 */
import { noteOpenFilesLimit, toEventDbxError } from '../core/errors.js';
import { readOpenFilesLimit } from '../fs/open-files-limit.js';
import { reportError } from './report.js';

noteOpenFilesLimit(readOpenFilesLimit());

// A reader that stops early (`eventdbx aggregate list | head`) closes the pipe: the rest of the output
// is dropped and the command ends with its own exit code, quietly, as other Unix tools do (Node
// ignores SIGPIPE, so the write fails with EPIPE, an unhandled 'error' event and a stack trace).
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') return;
    if (stream === process.stdout) process.exitCode = reportError(toEventDbxError(e));
  });

try {
  const { main } = await import('./program.js');
  process.exitCode = await main(process.argv);
} catch (e) {
  process.exitCode = reportError(toEventDbxError(e));
}
