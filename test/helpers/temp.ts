/**
 * Temporary directories for a test file, removed by the file's own after-hook so no test writes the
 * `mkdtemp` + `rm` pair again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach } from 'vitest';

export interface TempDirsOptions {
  /**
   * `'each'` (the default) removes the directories after each test; `'all'` after the last test of
   * the `describe` (or file) the maker was called in, for a directory made once in a `beforeAll`.
   */
  until?: 'each' | 'all';
}

/**
 * A maker of temporary directories named `<tmpdir>/<prefix>XXXXXX`, each removed after its test (or
 * after all of them, with `{ until: 'all' }`). Call it before the file's own after-hooks: they run
 * last-registered first, so what the file closes there (servers, stores, sinks) is closed before its
 * directory goes.
 *
 * @example
 * const tempDir = tempDirs('edbx-store-');
 * it('opens', async () => { const dir = await tempDir(); ... });
 */
export function tempDirs(prefix: string, { until = 'each' }: TempDirsOptions = {}): () => Promise<string> {
  const dirs: string[] = [];
  (until === 'all' ? afterAll : afterEach)(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  return async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
}
