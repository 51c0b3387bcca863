/** Reading a saved checkpoint (signed note) from a file or stdin. */
import { readFile } from 'node:fs/promises';
import { err } from '../core/errors.js';

export async function readNote(from: string): Promise<string> {
  try {
    if (from === '-') {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    }
    return await readFile(from, 'utf8');
  } catch (e) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: '--from',
      value: from,
      reason: `cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
    });
  }
}
