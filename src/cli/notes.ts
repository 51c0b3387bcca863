/** Reading a saved checkpoint (signed note) from a file or stdin, and a pinned public key from a file. */
import { createPublicKey } from 'node:crypto';
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

/**
 * The PEM of an Ed25519 public key saved earlier (the output of `checkpoint public-key`), for
 * `checkpoint verify --public-key`: the key an auditor pinned, not the one the store holds now.
 */
export async function readPublicKey(file: string): Promise<string> {
  const bad = (reason: string) =>
    err('EDBX_ERR_INVALID_ARGUMENT', { name: '--public-key', value: file, reason });
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (e) {
    throw bad(`cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let type: string | undefined;
  try {
    type = createPublicKey(pem).asymmetricKeyType;
  } catch {
    type = undefined;
  }
  if (type !== 'ed25519') {
    throw bad('it is not an Ed25519 public key in PEM: save the output of `eventdbx checkpoint public-key`');
  }
  return pem;
}
