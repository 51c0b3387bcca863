/**
 * Making a file this process cannot open for writing, and undoing it. Another user's process is shut
 * out by its mode; root is not, so as root the file is made immutable (`chattr +i`, as the DR QA did),
 * which needs a filesystem that has the attribute (ext4, xfs, btrfs). Undefined when neither works:
 * the test that needs it is skipped.
 */
import { spawnSync } from 'node:child_process';
import { chmod, open } from 'node:fs/promises';

async function writable(file: string): Promise<boolean> {
  try {
    await (await open(file, 'r+')).close();
    return true;
  } catch {
    return false;
  }
}

/** Shut this process out of writing `file`; answers the undo, or undefined when it cannot be done. */
export async function makeUnwritable(file: string): Promise<(() => Promise<void>) | undefined> {
  if (process.getuid?.() !== 0) {
    await chmod(file, 0o400);
    if (!(await writable(file))) return () => chmod(file, 0o600);
    await chmod(file, 0o600);
    return undefined;
  }
  const set = spawnSync('chattr', ['+i', file], { encoding: 'utf8' });
  if (set.status !== 0) return undefined;
  if (await writable(file)) {
    spawnSync('chattr', ['-i', file]);
    return undefined;
  }
  return async () => {
    spawnSync('chattr', ['-i', file]);
  };
}
