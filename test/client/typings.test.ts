/**
 * The SDK's typings as a user's strict TypeScript project sees them (QA qa-sdk2 #1, #3): the README's
 * client examples, and a program that gives every optional option and request field a value that may
 * be undefined, compile with `strict`, and with `exactOptionalPropertyTypes` on top; after
 * `isApiError(e, 'EDBX_ERR_VERSION_CONFLICT')` the members the server always sends with that code are
 * numbers. Each check runs the TypeScript compiler on files written to a temp dir, with
 * `eventdbx/client` mapped to the SDK's sources (the declarations a user gets are built from them).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from '../helpers/temp.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A user's strict project: ESM, `nodenext`, `@types/node`. */
const STRICT: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  types: ['node'],
  typeRoots: [path.join(ROOT, 'node_modules/@types')],
  paths: { 'eventdbx/client': [path.join(ROOT, 'src/client/index.ts')] },
};
/** The stricter settings of `@tsconfig/strictest` that bear on the SDK's types. */
const STRICTEST: ts.CompilerOptions = {
  ...STRICT,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
};

/**
 * The errors `tsc` reports in `files` (the SDK's own sources are compiled with the project's
 * settings, not these), one line each: `file(line,col): TS1234 message`.
 */
function typeErrors(files: readonly string[], options: ts.CompilerOptions): string[] {
  const program = ts.createProgram(files, options);
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...files.flatMap((f) => {
      const source = program.getSourceFile(f);
      if (!source) return [];
      return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    }),
  ];
  return diagnostics.map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.start === undefined) return `TS${d.code} ${text}`;
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${path.basename(d.file.fileName)}(${line + 1},${character + 1}): TS${d.code} ${text}`;
  });
}

/**
 * The README's ```ts blocks that use the client (not the embedded store's `from 'eventdbx'`). A block
 * without its own import is a fragment: it runs inside an async function, with `db` and the other
 * names the README leaves to the reader declared.
 */
async function readmeExamples(): Promise<Array<{ name: string; source: string }>> {
  const text = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => ({
    line: text.slice(0, m.index).split('\n').length,
    code: m[1]!,
  }));
  return blocks
    .filter((b) => !/from 'eventdbx';/.test(b.code))
    .map(({ line, code }) => ({
      name: `readme-${line}.mts`,
      source: /from 'eventdbx\/client';/.test(code)
        ? code
        : [
            "import { type EventRecord, EventDbxClient, EventDbxClientError } from 'eventdbx/client';",
            'declare const db: EventDbxClient;',
            'declare function retryLater(eventId: string): Promise<void>;',
            'export async function example(): Promise<unknown> {',
            code,
            '  return undefined;',
            '}',
            'export type { EventRecord, EventDbxClientError };',
          ].join('\n'),
    }));
}

/** Every optional field of the SDK's options and request types, given a value that may be undefined. */
const MAYBE = `
import {
  EventDbxClient,
  type AppendBody,
  type AuditOptions,
  type AuditQuery,
  type CallOptions,
  type ClientOptions,
  type ListAggregatesQuery,
  type PageQuery,
  type RetryOptions,
  type SchemaAlterBody,
  type SchemaCreateBody,
  type StreamQuery,
  type SubscribeOptions,
  type TokenCreateBody,
  type TransactionEvent,
  type TreeHead,
} from 'eventdbx/client';

declare const str: string | undefined;
declare const num: number | undefined;
declare const bool: boolean | undefined;
declare const strs: readonly string[] | undefined;
declare const signal: AbortSignal | undefined;
declare const tree: TreeHead | undefined;

const retry: RetryOptions = { retries: num, minDelayMs: num, maxDelayMs: num };
const options: ClientOptions = {
  url: str, token: str, retry, timeoutMs: num, generateEventIds: bool, publicKey: str, trust: str,
  headers: undefined, fetch: undefined,
};
const db = new EventDbxClient(options);
new EventDbxClient({ retry: undefined });
const call: CallOptions = { signal };
const page: PageQuery = { take: num, skip: num, cursor: str };
const listQuery: ListAggregatesQuery = { ...page, type: str };
const auditQuery: AuditQuery = { ...page, since: str, from_position: num };
export const streamQuery: StreamQuery = { from: num, aggregate: str };
const body: AppendBody = { event_type: 'x', payload: {}, expected_version: num, event_id: str };
const event: TransactionEvent = { ...body, aggregate_type: 'a', aggregate_id: 'b' };
const schema: SchemaCreateBody = { aggregate: 'a', events: ['x'], snapshot_threshold: num };
const alter: SchemaAlterBody = {
  event: str, snapshot_threshold: num, lock: bool, field: str, add: strs, remove: strs,
};
const token: TokenCreateBody = {
  group: 'g', user: 'u', expiration: num, limit: num, keep_alive: bool, read_only: bool,
  aggregates: strs, audit: bool,
};
const subscription: SubscribeOptions = {
  from: num, aggregate: str, signal, idleTimeoutMs: num, minDelayMs: num, maxDelayMs: num,
  maxAttempts: num, onCaughtUp: undefined,
};
const audit: AuditOptions = { trustOnFirstUse: bool, signal };

export async function everyMethod(): Promise<void> {
  await db.listAggregates(listQuery, call);
  for await (const a of db.aggregates({ type: str, pageSize: num, signal })) void a;
  await db.getAggregate('a', 'b', { version: num, signal });
  await db.listEvents('a', 'b', page, call);
  for await (const e of db.events('a', 'b', { fromVersion: num, pageSize: num, signal })) void e;
  await db.getEventProof('a', 'b', 1, { treeSize: num, signal });
  await db.append('a', 'b', body, call);
  await db.appendOutcome('a', 'b', body, { signal });
  await db.transaction([event], call);
  for await (const s of db.schemas({ pageSize: num, signal })) void s;
  await db.listSchemas(page);
  await db.createSchema(schema);
  await db.alterSchema('a', alter);
  for await (const t of db.tokens({ pageSize: num, signal })) void t;
  await db.listTokens(page);
  await db.createToken(token);
  await db.refreshToken('t', { expiration: num, limit: num });
  await db.auditLog(auditQuery, call);
  await db.pluginDeadLetters('p', { take: num, from: num, signal });
  await db.replayPlugin('p', num, { rebuild: bool, signal });
  await db.getLedgerProof(1, { treeSize: num, signal });
  const verified = await db.verifyEvent('a', 'b', 1, { tree, signal });
  await db.verifyLedgerInclusion(verified.event, { size: 1, root: 'r', note: str, signature: str }, call);
  await db.audit(audit);
  for await (const e of db.subscribe(subscription)) void e;
}
`;

/** What `isApiError` narrows to, per code (a \`@ts-expect-error\` that is not needed is an error too). */
const NARROWING = `
import { type ErrorCode, isApiError } from 'eventdbx/client';

export function rebaseOn(e: unknown): number | undefined {
  if (isApiError(e, 'EDBX_ERR_VERSION_CONFLICT')) {
    const code: 'EDBX_ERR_VERSION_CONFLICT' = e.code;
    const expected: number = e.problem.expected_version;
    const current: number = e.problem.current_version;
    return code === e.code && expected >= 0 ? current : undefined;
  }
  if (isApiError(e, 'EDBX_ERR_AGGREGATE_NOT_FOUND')) {
    // @ts-expect-error a code that does not carry them leaves them number | undefined
    const current: number = e.problem.current_version;
    return current;
  }
  return undefined;
}

export function anyOf(e: unknown, codes: readonly ErrorCode[]): number | undefined {
  for (const code of codes) {
    // A union of codes narrows by e.code, as a switch does.
    if (isApiError(e, code) && e.code === 'EDBX_ERR_VERSION_CONFLICT') return e.problem.current_version;
  }
  // Without a code, or with an undefined one: any API error, its code any string a server may send.
  if (isApiError(e) || isApiError(e, undefined)) {
    const code: string = e.code;
    // @ts-expect-error not narrowed to a registry code: a newer server may send another
    const known: ErrorCode = e.code;
    return code.length + known.length;
  }
  return undefined;
}
`;

let dir: string;
let files: { readme: string[]; maybe: string[]; narrowing: string[] };
const tempDir = tempDirs('edbx-typings-', { until: 'all' });

/** `sources` written to the temp dir; their paths. */
async function written(sources: ReadonlyArray<{ name: string; source: string }>): Promise<string[]> {
  return Promise.all(
    sources.map(async ({ name, source }) => {
      const file = path.join(dir, name);
      await writeFile(file, source);
      return file;
    }),
  );
}

/** One compilation of every file per set of options (each takes seconds), shared by the tests. */
const compiled = new Map<ts.CompilerOptions, string[]>();
function errorsIn(only: readonly string[], options: ts.CompilerOptions): string[] {
  let all = compiled.get(options);
  if (!all) {
    all = typeErrors([...files.readme, ...files.maybe, ...files.narrowing], options);
    compiled.set(options, all);
  }
  const names = new Set(only.map((f) => path.basename(f)));
  return all.filter((line) => !/^[^(]+\(/.test(line) || names.has(line.slice(0, line.indexOf('('))));
}

beforeAll(async () => {
  dir = await tempDir();
  const readme = await readmeExamples();
  expect(readme.length, 'README ```ts blocks').toBeGreaterThanOrEqual(5);
  files = {
    readme: await written(readme),
    maybe: await written([{ name: 'maybe.mts', source: MAYBE }]),
    narrowing: await written([{ name: 'narrowing.mts', source: NARROWING }]),
  };
});

describe('the SDK typings under a strict project (qa-sdk2 #1, #3)', () => {
  it('the README client examples compile with strict, and with exactOptionalPropertyTypes', () => {
    expect(errorsIn(files.readme, STRICT)).toEqual([]);
    expect(errorsIn(files.readme, STRICTEST)).toEqual([]);
  });

  it('every optional option and request field takes a value that may be undefined (exactOptionalPropertyTypes)', () => {
    expect(errorsIn(files.maybe, STRICTEST)).toEqual([]);
  });

  it("isApiError(e, 'EDBX_ERR_VERSION_CONFLICT') makes current_version and expected_version numbers", () => {
    expect(errorsIn(files.narrowing, STRICT)).toEqual([]);
    expect(errorsIn(files.narrowing, STRICTEST)).toEqual([]);
  });
});
