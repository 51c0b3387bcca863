/**
 * HTTP benchmark: the real server (built CLI, RocksDB, encryption, fsync per batch) next to a bare
 * fastify echo of the same requests, measured in the same run. Prints figures; never pass/fail.
 *
 *   npm run build && npx vite-node bench/http.ts
 *
 * Load comes from `wrk` when it is installed (Debian: `apt-get install wrk`), else from a built-in
 * keep-alive loader on node:http. BENCH_DURATION=<seconds per scenario> (default 10),
 * BENCH_SEQUENTIAL=<appends for the latency run> (default 2000), BENCH_LOADER=node to force the
 * built-in loader.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/helpers/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = path.join(ROOT, 'dist/cli/main.js');
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 2000);
const AGGREGATES = 1000;
const BODY = JSON.stringify({
  event_type: 'patient-updated',
  payload: { name: 'Jane Doe', status: 'active', ward: '3', note: 'x'.repeat(64) },
});

// ------------------------------------------------------------------ processes

async function waitFor(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`process exited early:\n${output()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`no answer from ${url}:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** The real server: `eventdbx start --foreground` on a fresh data dir. */
async function startEventDbx(dir: string) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    EVENTDBX_CONFIG: path.join(dir, '.eventdbx.json'),
    EVENTDBX_LOG_LEVEL: 'warn',
  };
  delete env.EVENTDBX_MASTER_KEY;
  delete env.EVENTDBX_DEK;
  delete env.EVENTDBX_DATA_DIR;
  execFileSync(process.execPath, [MAIN, 'config', '--master-key', 'bench-master', '--dek', 'bench-dek'], {
    cwd: dir,
    env,
    stdio: 'ignore',
  });
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [MAIN, 'start', '--foreground', '--port', String(port), '--restrict=false'],
    {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/health`, child, () => out);
  while (!/edbx_[A-Za-z0-9_-]{43}/.test(out)) await new Promise((r) => setTimeout(r, 20));
  const token = /edbx_[A-Za-z0-9_-]{43}/.exec(out)![0];
  return { child, url, token, output: () => out };
}

/** A bare fastify server answering the same requests: echo the posted JSON, return a small state. */
const ECHO_SOURCE = `
import Fastify from 'fastify';
const app = Fastify({ logger: false });
const state = { aggregate_type: 'bench', aggregate_id: 'b-1', version: 1, state: { name: 'Jane Doe', status: 'active', ward: '3', note: '${'x'.repeat(64)}' }, merkle_root: '${'0'.repeat(64)}', archived: false, created_at: new Date().toISOString(), updated_at: new Date().toISOString() };
app.post('/v1/aggregates/:type/:id/events', async (req, reply) => reply.code(201).send(req.body));
app.get('/v1/aggregates/:type/:id', async () => state);
app.get('/health', async () => ({ status: 'ok' }));
await app.listen({ port: Number(process.argv[1]), host: '127.0.0.1' });
`;

async function startEcho() {
  const port = await freePort();
  const child = spawn(process.execPath, ['--input-type=module', '-e', ECHO_SOURCE, String(port)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/health`, child, () => out);
  return { child, url };
}

// ------------------------------------------------------------------ loaders

interface Result {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly requests: number;
  readonly errors: number;
}

interface Scenario {
  readonly method: 'GET' | 'POST';
  /** Path; `{id}` becomes a random aggregate id per request. */
  readonly path: string;
  readonly connections: number;
  readonly token: string;
}

function hasWrk(): boolean {
  if (process.env.BENCH_LOADER === 'node') return false;
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (e) {
    // wrk --version exits 1 after printing its version
    return (e as { status?: number }).status === 1;
  }
}

const ms = (text: string): number => {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
};

async function runWrk(base: string, s: Scenario, dir: string): Promise<Result> {
  const script = path.join(dir, `wrk-${s.method}-${s.connections}.lua`);
  const target = s.path.replace('{id}', `" .. math.random(1, ${AGGREGATES}) .. "`);
  await writeFile(
    script,
    [
      'local headers = {}',
      `headers["Authorization"] = "Bearer ${s.token}"`,
      s.method === 'POST' ? 'headers["Content-Type"] = "application/json"' : '',
      `local body = ${s.method === 'POST' ? JSON.stringify(BODY) : 'nil'}`,
      'request = function()',
      `  return wrk.format("${s.method}", "${target}", headers, body)`,
      'end',
    ].join('\n'),
  );
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(
      'wrk',
      [
        '-t',
        String(Math.min(2, s.connections)),
        '-c',
        String(s.connections),
        '-d',
        `${DURATION}s`,
        '--latency',
        '-s',
        script,
        base,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('error', reject);
    child.on('exit', () => resolve(text));
  });
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const requests = num(/(\d+) requests in/);
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99: ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    requests,
    errors:
      (Number.isNaN(non2xx) ? 0 : non2xx) +
      (socketErrors ? socketErrors.slice(1).reduce((n, x) => n + Number(x), 0) : 0),
  };
}

const percentile = (sorted: number[], p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

function request(agent: http.Agent, base: URL, s: Scenario): Promise<number> {
  const target = s.path.replace('{id}', String(1 + Math.floor(Math.random() * AGGREGATES)));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method: s.method,
        path: target,
        headers: {
          authorization: `Bearer ${s.token}`,
          ...(s.method === 'POST'
            ? { 'content-type': 'application/json', 'content-length': BODY.length }
            : {}),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(s.method === 'POST' ? BODY : undefined);
  });
}

/** Built-in loader: `connections` keep-alive loops for DURATION seconds. */
async function runNode(base: string, s: Scenario): Promise<Result> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: s.connections });
  const url = new URL(base);
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + DURATION * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: s.connections }, async () => {
      while (performance.now() < end) {
        const start = performance.now();
        try {
          const status = await request(agent, url, s);
          if (status < 200 || status > 299) errors++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - start);
      }
    }),
  );
  const elapsed = performance.now() - t0;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    rps: (latencies.length / elapsed) * 1000,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    requests: latencies.length,
    errors,
  };
}

/** Sequential appends (one connection, one at a time), latency of each. */
async function sequential(base: string, token: string, count: number): Promise<Result> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL(base);
  const s: Scenario = { method: 'POST', path: '/v1/aggregates/seq/s-{id}/events', connections: 1, token };
  for (let i = 0; i < 50; i++) await request(agent, url, s); // warm up
  const latencies: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const status = await request(agent, url, s);
    latencies.push(performance.now() - start);
    if (status !== 201) errors++;
  }
  const elapsed = performance.now() - t0;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    rps: (count / elapsed) * 1000,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    requests: count,
    errors,
  };
}

// ------------------------------------------------------------------ run

async function metric(url: string, token: string, name: string): Promise<number> {
  const text = await (
    await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  ).text();
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
}

const fmt = (n: number, digits = 0) =>
  Number.isNaN(n)
    ? 'n/a'
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'edbx-bench-http-'));
  const wrk = hasWrk();
  if (!wrk) {
    console.log(
      'wrk is not installed (Debian/Ubuntu: apt-get install -y wrk); using the built-in node:http keep-alive loader instead.\n',
    );
  }
  const eventdbx = await startEventDbx(dir);
  const echo = await startEcho();
  const load = (base: string, s: Scenario) => (wrk ? runWrk(base, s, dir) : runNode(base, s));
  console.log(
    `loader: ${wrk ? 'wrk' : 'node:http'}, ${DURATION}s per scenario, ${os.cpus().length} CPUs, node ${process.version}`,
  );
  console.log(
    `eventdbx: ${eventdbx.url} (RocksDB + AES-256-GCM + fsync per batch); echo: ${echo.url} (bare fastify)\n`,
  );

  try {
    // Seed the aggregates the GETs read (one transaction per 500 events).
    for (let i = 0; i < AGGREGATES; i += 500) {
      const events = Array.from({ length: 500 }, (_, j) => ({
        aggregate_type: 'bench',
        aggregate_id: `b-${i + j + 1}`,
        ...JSON.parse(BODY),
      }));
      const r = await fetch(`${eventdbx.url}/v1/transactions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${eventdbx.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ events }),
      });
      if (r.status !== 201) throw new Error(`seeding failed: ${r.status} ${await r.text()}`);
    }

    const scenarios: Array<[string, Scenario]> = [
      [
        'POST event (durable), 1 connection',
        { method: 'POST', path: '/v1/aggregates/bench/b-{id}/events', connections: 1, token: eventdbx.token },
      ],
      [
        'POST event (durable), 64 connections',
        {
          method: 'POST',
          path: '/v1/aggregates/bench/b-{id}/events',
          connections: 64,
          token: eventdbx.token,
        },
      ],
      [
        'GET state (cached), 64 connections',
        { method: 'GET', path: '/v1/aggregates/bench/b-{id}', connections: 64, token: eventdbx.token },
      ],
    ];
    const rows: string[][] = [];
    for (const [name, s] of scenarios) {
      const batchesBefore = await metric(eventdbx.url, eventdbx.token, 'eventdbx_fsync_batches_total');
      const appendsBefore = await metric(eventdbx.url, eventdbx.token, 'eventdbx_appends_total');
      const real = await load(eventdbx.url, s);
      const batches =
        (await metric(eventdbx.url, eventdbx.token, 'eventdbx_fsync_batches_total')) - batchesBefore;
      const appends = (await metric(eventdbx.url, eventdbx.token, 'eventdbx_appends_total')) - appendsBefore;
      const base = await load(echo.url, s);
      rows.push([
        name,
        fmt(real.rps),
        fmt(base.rps),
        fmt(real.rps / base.rps, 2),
        `${fmt(real.p50, 2)} / ${fmt(real.p99, 2)}`,
        `${fmt(base.p50, 2)} / ${fmt(base.p99, 2)}`,
        s.method === 'POST' && batches > 0 ? fmt(appends / batches, 1) : '',
        String(real.errors + base.errors),
      ]);
      console.log(`  done: ${name}`);
    }
    const seq = await sequential(eventdbx.url, eventdbx.token, SEQUENTIAL);
    const seqEcho = await sequential(echo.url, eventdbx.token, SEQUENTIAL);
    rows.push([
      `POST event, sequential x${SEQUENTIAL}`,
      fmt(seq.rps),
      fmt(seqEcho.rps),
      fmt(seq.rps / seqEcho.rps, 2),
      `${fmt(seq.p50, 3)} / ${fmt(seq.p99, 3)}`,
      `${fmt(seqEcho.p50, 3)} / ${fmt(seqEcho.p99, 3)}`,
      '1.0',
      String(seq.errors + seqEcho.errors),
    ]);

    const header = [
      'scenario',
      'eventdbx req/s',
      'echo req/s',
      'ratio',
      'eventdbx p50/p99 ms',
      'echo p50/p99 ms',
      'events/fsync',
      'errors',
    ];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) =>
      cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
    for (const r of rows) console.log(line(r));
    console.log(
      '\nIssue 4 targets (for reference, not checked): appends at 64 connections >= 0.45x echo; sequential append p99 < 1 ms; cached GETs >= 0.6x echo.',
    );
  } finally {
    await stopProcess(echo.child);
    await stopProcess(eventdbx.child);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
