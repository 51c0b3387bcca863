/**
 * The process umask while a RocksDB database is open. RocksDB creates its files (WAL, SST, MANIFEST,
 * OPTIONS) from its own threads at any time, with mode 0666 less the umask and no way to ask for
 * another: with the usual umask 022 every local user can read them, and they hold what is stored in
 * clear (the wrapped keyring, aggregate and event ids, hashes), which makes `keyring.json`'s 0600
 * pointless. While a database is open the umask also masks group and others (0o077); it is put back
 * when the last one closes.
 *
 * The umask is the whole process's: whatever else creates files meanwhile without a mode of its own
 * gets owner-only ones too. The server's other files say their mode (PID file, keyring copy, log,
 * control socket, the plugins' outputs: a new file 0600, a new directory 0700, an existing one keeps
 * its mode, SQLite's `-wal` and `-shm` follow their database's), so nothing else changes.
 */
import { isMainThread } from 'node:worker_threads';

/** Bits masked while a database is open: every permission of group and others. */
export const PRIVATE_MASK = 0o077;

let holders = 0;
let saved = 0;

/**
 * Mask group and others in the process umask until the returned function is called (once per hold;
 * holds nest: the umask is put back when the last one ends). A worker thread cannot change the umask
 * (it shares the process's), and does not try.
 */
export function holdPrivateUmask(): () => void {
  if (!isMainThread) return () => undefined;
  if (holders++ === 0) {
    saved = process.umask(PRIVATE_MASK);
    // A stricter umask (027 masks group writes already) keeps its own bits too.
    if ((saved | PRIVATE_MASK) !== PRIVATE_MASK) process.umask(saved | PRIVATE_MASK);
  }
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    if (--holders === 0) process.umask(saved);
  };
}
