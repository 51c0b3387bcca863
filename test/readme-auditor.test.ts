/**
 * README "Auditor's procedure" (QA audit, finding 7): its code blocks, saved in order as `audit.mjs`
 * exactly as the README says, run against a real server (the built CLI, RocksDB in a temp dir, HTTP
 * on 127.0.0.1) with a scoped `--read-only --audit` token, so the procedure cannot rot. Its proof
 * helpers are checked against the RFC 6962 vectors and the store's own Merkle code; the runs check
 * that it passes on an honest store, keeps its trail, and stops (keeping nothing new) at a rollback,
 * a fork, a key it did not pin, and, with `--whole-ledger`, an event hidden from `/events`.
 */
import { cp, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  consistencyProof,
  inclusionProof,
  leafHash,
  rootOfLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from '../src/core/merkle/index.js';
import {
  type CliResult,
  type Project,
  type RunningServer,
  api,
  project,
  runNode,
  startServer,
} from './helpers/cli.js';
import { tempDirs } from './helpers/temp.js';

const README = new URL('../README.md', import.meta.url);

/** The ```js blocks of the README's "Auditor's procedure" section, in order. */
async function procedureBlocks(): Promise<string[]> {
  const text = await readFile(README, 'utf8');
  const start = text.indexOf("\n### Auditor's procedure\n");
  expect(start, 'README has no "### Auditor\'s procedure" section').toBeGreaterThan(0);
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

interface Helpers {
  jcs(v: unknown): string;
  mth(leaves: readonly Buffer[]): Buffer;
  included(leaf: Buffer, index: number, size: number, proof: readonly string[], root: Buffer): boolean;
  consistent(m: number, n: number, r1: Buffer, r2: Buffer, proof: readonly string[]): boolean;
}

interface Vectors {
  leaf_inputs_hex: string[];
  leaf_hashes: string[];
  roots: string[];
  inclusion: Array<{ leaf_index: number; tree_size: number; audit_path: string[] }>;
  consistency: Array<{ first: number; second: number; consistency_path: string[] }>;
}

let work: string;
let blocks: string[];

const tempDir = tempDirs('edbx-readme-auditor-', { until: 'all' });
beforeAll(async () => {
  work = await tempDir();
  blocks = await procedureBlocks();
});

/** An auditor's directory: the README's script as audit.mjs and the pinned key as eventdbx.pub. */
async function auditorDir(name: string, publicKeyPem: string): Promise<string> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'audit.mjs'), blocks.join('\n'));
  await writeFile(path.join(dir, 'eventdbx.pub'), publicKeyPem);
  return dir;
}

/** `EVENTDBX_URL=… EVENTDBX_TOKEN=… node audit.mjs …args`, as the README runs it. */
function runAudit(dir: string, url: string, token: string, args: readonly string[]): Promise<CliResult> {
  return runNode('audit.mjs', args, {
    cwd: dir,
    env: { ...process.env, EVENTDBX_URL: url, EVENTDBX_TOKEN: token },
  });
}

/** What the trail holds: file names and roots.json. */
async function trailOf(
  dir: string,
): Promise<{ files: string[]; roots: Record<string, { version: number; root: string }> }> {
  const files = (await readdir(path.join(dir, 'audit-trail'))).sort();
  const roots = JSON.parse(await readFile(path.join(dir, 'audit-trail', 'roots.json'), 'utf8'));
  return { files, roots };
}

describe("README auditor's procedure: the proof helpers (QA audit finding 7)", () => {
  let h: Helpers;
  beforeAll(async () => {
    // Blocks 1 and 2 are the helpers; the later ones read files and the network.
    const file = path.join(work, 'helpers.mjs');
    await writeFile(file, `${blocks[0]}\n${blocks[1]}\nexport { jcs, mth, included, consistent };\n`);
    h = (await import(file)) as Helpers;
  });

  it('agrees with the RFC 6962 test vectors', async () => {
    const v = JSON.parse(
      await readFile(new URL('./fixtures/rfc6962-vectors.json', import.meta.url), 'utf8'),
    ) as Vectors;
    const leaves = v.leaf_hashes.map((x) => Buffer.from(x, 'hex'));
    v.roots.forEach((root, i) => expect(h.mth(leaves.slice(0, i + 1)).toString('hex')).toBe(root));
    const root = (size: number) => Buffer.from(v.roots[size - 1]!, 'hex');
    for (const c of v.inclusion) {
      const ok = h.included(
        leaves[c.leaf_index]!,
        c.leaf_index,
        c.tree_size,
        c.audit_path,
        root(c.tree_size),
      );
      expect(ok, JSON.stringify(c)).toBe(true);
    }
    for (const c of v.consistency) {
      const ok = h.consistent(c.first, c.second, root(c.first), root(c.second), c.consistency_path);
      expect(ok, JSON.stringify(c)).toBe(true);
    }
  });

  it("answers as the store's own verifiers for every proof of trees up to 20 leaves, and their mutations", () => {
    const leaves = Array.from({ length: 20 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
    const get = (level: number, index: number) =>
      rootOfLeafHashes(leaves.slice(index * 2 ** level, (index + 1) * 2 ** level));
    const roots = [Buffer.alloc(32), ...leaves.map((_, i) => rootOfLeafHashes(leaves.slice(0, i + 1)))];
    const hexes = (p: readonly Buffer[]) => p.map((b) => b.toString('hex'));
    const flip = (p: readonly Buffer[], i: number) =>
      p.map((b, j) => (j === i ? Buffer.from(b.map((x, k) => (k === 0 ? x ^ 1 : x))) : b));
    /** A proof, and the same cut short, made longer, and with each hash in turn changed. */
    const variants = (proof: readonly Buffer[]) => [
      proof,
      proof.slice(1),
      [...proof, leaves[0]!],
      ...proof.map((_, j) => flip(proof, j)),
    ];
    let checked = 0;
    for (let n = 1; n <= 20; n++) {
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(get, i, n);
        for (const p of variants(proof)) {
          expect(h.included(leaves[i]!, i, n, hexes(p), roots[n]!)).toBe(
            verifyInclusion(leaves[i]!, i, n, p, roots[n]!),
          );
          checked += 1;
        }
        expect(h.included(leaves[i]!, i, n, hexes(proof), roots[n]!)).toBe(true);
      }
      for (let m = 1; m <= n; m++) {
        const proof = consistencyProof(get, m, n);
        for (const p of variants(proof)) {
          for (const [r1, r2] of [
            [roots[m]!, roots[n]!],
            [roots[m]!, roots[n - 1]!],
            [roots[m - 1]!, roots[n]!],
          ] as const) {
            expect(h.consistent(m, n, r1, r2, hexes(p)), `${m}→${n}`).toBe(
              verifyConsistency(m, n, r1, r2, p),
            );
            checked += 1;
          }
        }
        expect(h.consistent(m, n, roots[m]!, roots[n]!, hexes(proof))).toBe(true);
      }
    }
    expect(checked).toBeGreaterThan(3_000);
  });

  it('writes RFC 8785 for every value JSON.parse returns', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const parsed: unknown = JSON.parse(JSON.stringify(value));
        expect(h.jcs(parsed)).toBe(canonicalize(parsed));
      }),
      { numRuns: 500 },
    );
    const odd = { é: '😀 "q" \\ \u0001 ✓ \u2028', b: [1, true, null, { '10': 'x', '9': 'y' }], a: '72.50' };
    expect(h.jcs(odd)).toBe(canonicalize(odd));
  });
});

describe("README auditor's procedure, run word for word against a real server (QA audit finding 7)", () => {
  let p: Project;
  let server: RunningServer;
  let pem: string;
  let ann: string;
  let admin: string;
  let auditor: string;

  const cli = async (args: readonly string[]) => {
    const r = await p.cli(args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const append = async (id: string, payloads: readonly Record<string, string>[]) => {
    const events = payloads.map((payload) => ({
      aggregate_type: 'patient',
      aggregate_id: id,
      event_type: 'patient-updated',
      payload,
    }));
    for (let i = 0; i < events.length; i += 1000) {
      const r = await api(`${server.url}/v1/transactions`, admin, {
        body: { events: events.slice(i, i + 1000) },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
  };
  const audit = (dir: string, args: readonly string[] = ['patient/p-001'], token = ann, url = server.url) =>
    runAudit(dir, url, token, args);

  beforeAll(async () => {
    p = await project();
    server = await startServer(p, ['--restrict=false']);
    admin = server.adminToken; // shown by the first start only
    // Step 1, the operator's side: a scoped read-only audit token and the public key, out of band.
    ann = JSON.parse(
      await cli([
        'token',
        'generate',
        '--group',
        'auditors',
        '--user',
        'ann',
        '--read-only',
        '--aggregate',
        'patient/p-001',
        '--audit',
        '--expiration',
        '86400',
        '--json',
      ]),
    ).token.token as string;
    pem = await cli(['checkpoint', 'public-key']);
    auditor = await auditorDir('ann', pem);
  });
  afterAll(async () => {
    await server?.stop();
    await p?.cleanup();
  });

  it('passes on an honest store, keeps the checkpoint and the roots it proved, and picks up from them', async () => {
    await append('p-001', [
      { name: 'Jane', note: 'é 😀 "q" \\ \u0001 ✓ \u2028 end' },
      { status: 'active', amount: '72.50' },
    ]);
    await append('p-002', [{ name: 'John' }]);
    // Audit entries the scoped auditor is not shown (a token that can never reach p-001): withheld.
    const bob = JSON.parse(
      await cli([
        'token',
        'generate',
        '--group',
        'billing',
        '--user',
        'bob',
        '--aggregate',
        'billing',
        '--json',
      ]),
    ).token.id as string;
    await append('p-001', [{ status: 'seen' }, { status: 'discharged' }]);

    const first = await audit(auditor);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const size = Number(/^ok: ledger of (\d+) events signed by the pinned key/.exec(first.stdout)?.[1]);
    const t1 = await trailOf(auditor);
    expect(t1.files).toEqual([`ledger-${String(size).padStart(15, '0')}.note`, 'roots.json']);
    const agg = (await api(`${server.url}/v1/aggregates/patient/p-001`, ann)).body;
    expect(t1.roots['patient/p-001']).toEqual({ version: 4, root: agg.merkle_root });
    const log = (await api(`${server.url}/v1/audit?take=1000`, ann)).body;
    expect(log.withheld.length).toBeGreaterThan(0);
    expect(t1.roots['$audit/log']!.version).toBe(log.entries.length + log.withheld.length);
    const note = await readFile(path.join(auditor, 'audit-trail', t1.files[0]!), 'utf8');
    expect(note).toMatch(new RegExp(`^eventdbx/ledger\\n${size}\\n`));

    // From version 4 (a power of two: the proof leaves the old root out) past a page of 1,000 events
    // (the skip goes with the first page only), and a ledger consistency proof from the note kept.
    await append(
      'p-001',
      Array.from({ length: 1003 }, (_, i) => ({ status: `round ${i}` })),
    );
    await append('p-002', [{ status: 'moved' }]);
    await cli(['token', 'revoke', '--token', bob]);
    const second = await audit(auditor);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    const t2 = await trailOf(auditor);
    expect(t2.files).toHaveLength(3);
    expect(t2.roots['patient/p-001']!.version).toBe(1007);

    // Nothing new: no new note, the same roots.
    const third = await audit(auditor);
    expect(third.code, third.stderr).toBe(0);
    expect(await trailOf(auditor)).toEqual(t2);
  });
  it('stops at a rollback and at a fork (a restored backup), keeping nothing new, as the host command does', async () => {
    const backup = path.join(p.dir, 'backup-1');
    await cli(['backup', backup]);
    await append('p-001', [{ status: 'after the backup' }]);
    // A leaver's token, revoked after the backup: the restore undoes the revocation (QA finding 4).
    const leaver = JSON.parse(
      await cli(['token', 'generate', '--group', 'nurses', '--user', 'leaver', '--json']),
    ).token.id as string;
    await cli(['token', 'revoke', '--token', leaver]);
    expect((await audit(auditor)).code).toBe(0);
    const kept = await trailOf(auditor);
    const newest = path.join(auditor, 'audit-trail', kept.files.at(-2)!);

    // The operator restores the backup (README "Backup and restore"), a plain copy without backup.json.
    await server.stop();
    await rename(p.dataDir, `${p.dataDir}.broken`);
    await cp(backup, p.dataDir, { recursive: true });
    await rm(path.join(p.dataDir, 'backup.json'));
    server = await startServer(p, ['--restrict=false']);
    const rolledBack = await audit(auditor);
    expect(rolledBack.code).toBe(1);
    expect(rolledBack.stderr).toMatch(/Error: patient\/p-001: rolled back to v\d+, v\d+ was audited before/);
    const logOnly = await audit(auditor, []);
    expect(logOnly.stderr).toMatch(/Error: audit log: rolled back to \d+ entries, \d+ were audited before/);
    const notesOnly = await auditorDir('notes-only', pem);
    await cp(path.join(auditor, 'audit-trail'), path.join(notesOnly, 'audit-trail'), { recursive: true });
    await rm(path.join(notesOnly, 'audit-trail', 'roots.json'));
    expect((await audit(notesOnly, [])).stderr).toMatch(
      /Error: rolled back: a checkpoint kept has \d+ events, the store signs \d+/,
    );
    expect(await trailOf(auditor)).toEqual(kept);

    // The restored store grows again: another history than the one signed for the auditor.
    await append(
      'p-001',
      Array.from({ length: 20 }, (_, i) => ({ status: `rewritten ${i}` })),
    );
    expect((await audit(auditor)).stderr).toMatch(
      /Error: patient\/p-001: its first \d+ events are no longer those audited before/,
    );
    expect((await audit(notesOnly, [])).stderr).toMatch(
      /Error: forked: the ledger of \d+ events does not extend the one of \d+ kept/,
    );
    expect(await trailOf(auditor)).toEqual(kept);
    const host = await p.cli([
      'checkpoint',
      'verify',
      '--from',
      newest,
      '--public-key',
      path.join(auditor, 'eventdbx.pub'),
    ]);
    expect(host.code).toBe(1);
    expect(host.stderr).toMatch(/was rewritten \[EDBX_ERR_CHECKPOINT_MISMATCH\]/);

    // A restore made on purpose: move the trail aside, keep it, and start a new one.
    await rename(path.join(auditor, 'audit-trail'), path.join(auditor, 'audit-trail.before-restore'));
    const fresh = await audit(auditor);
    expect(fresh.code, fresh.stderr).toBe(0);
  });

  it('refuses a checkpoint the pinned key does not verify, though it verifies with the key the server serves', async () => {
    const other = await project();
    const impostor = await startServer(other, ['--restrict=false']);
    try {
      const token = JSON.parse(
        (
          await other.cli([
            'token',
            'generate',
            '--group',
            'auditors',
            '--user',
            'ann',
            '--read-only',
            '--audit',
            '--json',
          ])
        ).stdout,
      ).token.token as string;
      const pinned = await auditorDir('pinned', pem);
      const r = await audit(pinned, [], token, impostor.url);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/Error: the checkpoint is not signed by the pinned key/);
      await expect(readdir(path.join(pinned, 'audit-trail'))).resolves.toEqual([]);
      // The key GET /v1/checkpoint serves vouches for its own notes, whoever serves them, and says so.
      const doc = (await api(`${impostor.url}/openapi.json`, undefined)).body;
      const field =
        doc.paths['/v1/checkpoint'].get.responses['200'].content['application/json'].schema.properties
          .public_key;
      expect(field.description).toMatch(/the server's own word.*pinned out of band/s);
      const served = (await api(`${impostor.url}/v1/checkpoint`, token)).body.public_key as string;
      const trusting = await auditorDir('trusting', served);
      expect((await audit(trusting, [], token, impostor.url)).code).toBe(0);
    } finally {
      await impostor.stop();
      await other.cleanup();
    }
  });

  it('--whole-ledger (a token without --aggregate) finds the newest event hidden from /events; a scoped audit cannot', async () => {
    const whole = JSON.parse(
      await cli([
        'token',
        'generate',
        '--group',
        'auditors',
        '--user',
        'ann-whole',
        '--read-only',
        '--audit',
        '--json',
      ]),
    ).token.token as string;
    const bea = JSON.parse(
      await cli([
        'token',
        'generate',
        '--group',
        'auditors',
        '--user',
        'bea',
        '--read-only',
        '--audit',
        '--aggregate',
        'patient/p-002',
        '--json',
      ]),
    ).token.token as string;
    const direct = await auditorDir('whole-direct', pem);
    const ok = await audit(direct, ['patient/p-002', '--whole-ledger'], whole);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);

    // In front of the real server, a proxy that shows p-002 one version short (as someone with the keys could).
    interface Shown {
      version: number;
      merkle_root: string;
      events: Array<{ version: number }>;
    }
    const at = '/v1/aggregates/patient/p-002';
    let streamFails = false;
    const proxy = http.createServer(async (req, res) => {
      const up = (url: string) =>
        fetch(server.url + url, { headers: { authorization: req.headers.authorization ?? '' } });
      const upstream = await up(req.url!);
      if (upstream.headers.get('content-type')?.startsWith('text/event-stream')) {
        res.writeHead(upstream.status, { 'content-type': 'text/event-stream' });
        if (streamFails) {
          // What a server whose log lost an event sends (pen-test #2): the problem, then the end.
          const problem = { code: 'EDBX_ERR_INTEGRITY', detail: 'stored data failed its integrity check' };
          res.end(`event: error\ndata: ${JSON.stringify(problem)}\n\n`);
          return;
        }
        Readable.fromWeb(upstream.body as never).pipe(res);
        return;
      }
      let body = (await upstream.json()) as Shown;
      const { pathname } = new URL(req.url!, server.url);
      if (upstream.ok && pathname === at) {
        const before = (await (await up(`${at}/events/${body.version - 1}`)).json()) as Shown;
        body = { ...body, version: body.version - 1, merkle_root: before.merkle_root };
      } else if (upstream.ok && pathname === `${at}/events`) {
        const newest = ((await (await up(at)).json()) as Shown).version;
        body = { ...body, events: body.events.filter((e) => e.version < newest) };
      }
      res.writeHead(upstream.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const lying = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const scoped = await audit(await auditorDir('scoped-lied-to', pem), ['patient/p-002'], bea, lying);
      expect(scoped.stderr).toBe('');
      expect(scoped.code).toBe(0);
      const wholeFails = async (dir: string, reason: RegExp) => {
        const r = await audit(await auditorDir(dir, pem), ['patient/p-002', '--whole-ledger'], whole, lying);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(reason);
      };
      await wholeFails(
        'whole-lied-to',
        /Error: patient\/p-002: the signed ledger holds \d+ events, the aggregate shows fewer/,
      );
      // A stream that ends with an error is named as such, not taken for a position a scoped token misses.
      streamFails = true;
      await wholeFails(
        'whole-broken',
        /Error: the stream of the ledger failed: stored data failed its integrity check/,
      );
    } finally {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  });
});
