/**
 * Test helpers that use the real, built CLI (`dist/cli/main.js`, built by `npm test` / `npm ci`):
 * a temporary project dir with its own config, `cli(...)` to run commands, and a real server.
 */
import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { writeConfigFile } from '../../src/config/config.js';
import { processFacts } from '../../src/server/proc.js';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Arguments of `aggregate apply` for one event; each field is `KEY=VALUE`. */
export const applyArgs = (aggregate: string, id: string, event: string, fields: readonly string[] = []) => [
  'aggregate',
  'apply',
  '--aggregate',
  aggregate,
  '--aggregate-id',
  id,
  '--event',
  event,
  ...fields.flatMap((f) => ['--field', f]),
];

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface Project {
  readonly dir: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly env: NodeJS.ProcessEnv;
  cli(args: readonly string[], input?: string): Promise<CliResult>;
  cleanup(): Promise<void>;
}

/** A temp dir with a config (keys set) whose data dir is `<dir>/.eventdbx`. */
export async function project(options: { configure?: boolean } = {}): Promise<Project> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-e2e-'));
  const configPath = path.join(dir, '.eventdbx.json');
  const env: NodeJS.ProcessEnv = { ...process.env, EVENTDBX_CONFIG: configPath, NO_COLOR: '1' };
  delete env.EVENTDBX_MASTER_KEY;
  delete env.EVENTDBX_DEK;
  delete env.EVENTDBX_DATA_DIR;
  const cli = (args: readonly string[], input?: string) =>
    run(args, { cwd: dir, env, ...(input === undefined ? {} : { input }) });
  const p: Project = {
    dir,
    dataDir: path.join(dir, '.eventdbx'),
    configPath,
    env,
    cli,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
  // What `eventdbx config --master-key test-master --dek test-dek` writes first (test/cli-config.test.ts
  // runs that command), written here without a CLI process of its own.
  if (options.configure !== false)
    await writeConfigFile(configPath, { master_key: 'test-master', dek: 'test-dek' });
  return p;
}

export function run(
  args: readonly string[],
  o: { cwd: string; env: NodeJS.ProcessEnv; input?: string },
): Promise<CliResult> {
  return runNode(MAIN, args, o);
}

/** `node <script> …args` in `cwd` with `env`, `input` on its stdin: its exit code and output. */
export function runNode(
  script: string,
  args: readonly string[],
  o: { cwd: string; env: NodeJS.ProcessEnv; input?: string },
): Promise<CliResult> {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: o.cwd,
    env: o.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end(o.input ?? '');
  return outcomeOf(child);
}

/** A child process's exit code and output, once it has closed. */
export function outcomeOf(child: ChildProcessWithoutNullStreams): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly adminToken: string;
  readonly process: ChildProcess;
  readonly output: () => string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

/**
 * `node …args` as a command: run under an open-files limit of `openFiles` (`ulimit -n`, soft and hard,
 * set by `sh` before it becomes node) when one is given.
 */
export function nodeCommand(args: readonly string[], openFiles?: number): [string, string[]] {
  if (openFiles === undefined) return [process.execPath, [...args]];
  return ['sh', ['-c', `ulimit -n ${openFiles} && exec "$0" "$@"`, process.execPath, ...args]];
}

/**
 * Start `eventdbx start --foreground` for a project and wait until /health answers; `openFiles` runs
 * it under that open-files limit.
 */
export async function startServer(
  p: Project,
  extraArgs: readonly string[] = [],
  o: { openFiles?: number } = {},
): Promise<RunningServer> {
  const port = await freePort();
  const [command, args] = nodeCommand(
    [MAIN, 'start', '--foreground', '--port', String(port), ...extraArgs],
    o.openFiles,
  );
  const child = spawn(command, args, {
    cwd: p.dir,
    env: { ...p.env, EVENTDBX_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${out}`);
    try {
      if ((await fetch(`${url}/health`)).ok && out.includes('listening on')) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const adminToken = /edbx_[A-Za-z0-9_-]{43}/.exec(out)?.[0] ?? '';
  return {
    url,
    port,
    adminToken,
    process: child,
    output: () => out,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** fetch with a bearer token and JSON body; returns status and parsed body. */
export async function api(
  url: string,
  token: string | undefined,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    },
    ...(init.body === undefined
      ? {}
      : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body, headers: res.headers };
}

/** Whether a process runs (a zombie, exited but not reaped yet, does not). */
export function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const state = processFacts(pid)?.state;
  return state !== 'Z' && state !== 'X';
}

/** The PID a data dir's PID file names, or undefined when there is none (no server started there). */
export async function serverPid(dataDir: string): Promise<number | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dataDir, 'eventdbx.pid'), 'utf8')).pid as number;
  } catch {
    return undefined;
  }
}
