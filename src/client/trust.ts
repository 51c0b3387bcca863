/**
 * Where an auditor keeps the last checkpoint it verified (and the key it pinned): a JSON file, an
 * in-memory store, or anything implementing `CheckpointStore` (a database row, a secrets manager…).
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EventDbxVerificationError } from './errors.js';
import { makeDir } from '../fs/make-dir.js';

/** The last verified checkpoint: the signed note as served, and the key it was verified with. */
export interface TrustedCheckpoint {
  readonly note: string;
  /** PEM of the pinned Ed25519 public key. */
  readonly public_key: string;
  /** When `audit()` verified it (RFC 3339). */
  readonly verified_at: string;
}

export interface CheckpointStore {
  /** The trusted checkpoint, or undefined before the first audit. */
  load(): Promise<TrustedCheckpoint | undefined>;
  /** Replace it; called only after the new checkpoint was proven to extend the old one. */
  save(checkpoint: TrustedCheckpoint): Promise<void>;
}

const broken = (message: string, cause?: unknown) =>
  new EventDbxVerificationError('EDBX_ERR_TRUST_STORE', message, cause);

function validate(v: unknown, where: string): TrustedCheckpoint {
  const o = v as Partial<TrustedCheckpoint> | null;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.note !== 'string' ||
    typeof o.public_key !== 'string' ||
    typeof o.verified_at !== 'string'
  ) {
    throw broken(`${where} is not a trusted checkpoint ({note, public_key, verified_at})`);
  }
  return { note: o.note, public_key: o.public_key, verified_at: o.verified_at };
}

/** Keeps the trusted checkpoint in memory (tests, short-lived auditors). */
export class MemoryCheckpointStore implements CheckpointStore {
  #value: TrustedCheckpoint | undefined;
  constructor(initial?: TrustedCheckpoint) {
    this.#value = initial;
  }
  async load(): Promise<TrustedCheckpoint | undefined> {
    return this.#value;
  }
  async save(checkpoint: TrustedCheckpoint): Promise<void> {
    this.#value = validate(checkpoint, 'the checkpoint');
  }
}

/**
 * Keeps the trusted checkpoint in a JSON file (mode 0600), replaced atomically (write, then rename),
 * so a crash never leaves half a checkpoint.
 *
 * @example
 * const client = new EventDbxClient({ trust: new FileCheckpointStore('/var/lib/auditor/edbx.json') });
 */
export class FileCheckpointStore implements CheckpointStore {
  constructor(readonly file: string) {}

  async load(): Promise<TrustedCheckpoint | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw broken(`cannot read the trusted checkpoint ${this.file}: ${(e as Error).message}`, e);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw broken(`the trusted checkpoint ${this.file} is not JSON`, e);
    }
    return validate(parsed, `the trusted checkpoint ${this.file}`);
  }

  async save(checkpoint: TrustedCheckpoint): Promise<void> {
    const value = validate(checkpoint, 'the checkpoint');
    const tmp = `${this.file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      makeDir(path.dirname(this.file));
      await writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600, flush: true });
      await rename(tmp, this.file);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => {});
      throw broken(`cannot write the trusted checkpoint ${this.file}: ${(e as Error).message}`, e);
    }
  }
}
