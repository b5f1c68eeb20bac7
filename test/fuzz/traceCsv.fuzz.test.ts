/**
 * Fuzzing trace CSV import (`readTrace`, and `memtide analyze` end to end):
 * random bytes and text, and valid traces with corruptions (missing and extra
 * fields, non-numbers, NaN, negatives, huge numbers, a BOM, CRLF, quotes,
 * empty lines, binary bytes, going back in time).
 *
 * Every read either yields the trace or rejects with a TraceError naming
 * `source:line` of the first bad line, computed independently here; never
 * another error; `memtide analyze` prints nothing when it rejects. Failures
 * print fast-check's seed and path.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeCommand } from '../../src/app/commands/analyze.js';
import { TRACE_HEADER, TraceError, readTrace, type TraceSample } from '../../src/sources/traceCsv.js';
import { runs } from './support/runs.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'memtide-fuzz-trace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
function traceFile(bytes: Buffer): string {
  files += 1;
  const file = path.join(dir, `trace-${files}.csv`);
  writeFileSync(file, bytes);
  return file;
}

type Read = { ok: true; samples: TraceSample[] } | { ok: false; error: TraceError };

/** Reads a whole trace from bytes, delivered in chunks of `chunk` bytes (lines split across reads). */
async function read(bytes: Buffer, chunk: number): Promise<Read> {
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += chunk) parts.push(bytes.subarray(at, at + chunk));
  const samples: TraceSample[] = [];
  try {
    for await (const sample of readTrace(Readable.from(parts), 'fuzz.csv')) samples.push(sample);
  } catch (error) {
    if (!(error instanceof TraceError)) throw new Error(`expected a TraceError, got ${String((error as Error)?.stack ?? error)}`);
    return { ok: false, error };
  }
  return { ok: true, samples };
}

function expectTraceError(error: TraceError, lines: number): void {
  expect(error.code).toBe('MEMTIDE_ERR_TRACE');
  expect(error.source).toBe('fuzz.csv');
  expect(Number.isInteger(error.line) && error.line >= 1 && error.line <= Math.max(1, lines), `line ${error.line} of ${lines}`).toBe(true);
  expect(error.message.startsWith(`fuzz.csv:${error.line}: `), error.message).toBe(true);
  expect(error.message.length).toBeGreaterThan(`fuzz.csv:${error.line}: `.length);
}

/** Lines as readline counts them: \n, \r\n and a lone \r all end a line. */
const lineCount = (text: string) => (text === '' ? 0 : text.split(/\r\n|\r|\n/).length - (/(\r\n|\r|\n)$/.test(text) ? 1 : 0));

// ---------------------------------------------------------------------------------------
// A valid trace, and a model of which lines are bad
// ---------------------------------------------------------------------------------------

interface Row {
  t: number;
  component: string;
  bytes: number;
}

/** Rows in time order, each component at most once per timestamp, system rows included. */
const rowsArb: fc.Arbitrary<Row[]> = fc
  .array(
    fc.record({
      gap: fc.constantFrom(0, 1000, 1000, 10_000),
      components: fc.uniqueArray(fc.constantFrom('ollama', 'engine', 'system.total', 'system.available', 'a,b', 'say "hi"', 'ñandú', 'x y'), { minLength: 1, maxLength: 4 }),
      bytes: fc.array(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { minLength: 4, maxLength: 4 }),
    }),
    { minLength: 0, maxLength: 12 },
  )
  .map((groups) => {
    const rows: Row[] = [];
    let t = 1_700_000_000_000;
    for (const group of groups) {
      t += group.gap;
      group.components.forEach((component, i) => rows.push({ t, component, bytes: group.bytes[i] as number }));
    }
    // A gap of 0 reuses the timestamp: a component may then repeat, which is its own error; keep groups distinct.
    const seen = new Set<string>();
    return rows.filter((row) => !seen.has(`${row.t}|${row.component}`) && (seen.add(`${row.t}|${row.component}`), true));
  });

const quote = (field: string) => (/[",]/.test(field) ? `"${field.replaceAll('"', '""')}"` : field);
const rowLine = (row: Row) => `${row.t},${quote(row.component)},${row.bytes}`;

type Corruption =
  | 'dropField'
  | 'extraField'
  | 'emptyLine'
  | 'blankLine'
  | 'tsText'
  | 'tsNaN'
  | 'tsNegative'
  | 'tsHuge'
  | 'tsUnsafe'
  | 'tsDecimal'
  | 'bytesText'
  | 'bytesNegative'
  | 'bytesHuge'
  | 'bytesExponent'
  | 'bytesSpace'
  | 'emptyComponent'
  | 'unbalancedQuote'
  | 'strayQuote'
  | 'binaryInComponent'
  | 'binaryInNumber'
  | 'bomMidFile'
  | 'backInTime'
  | 'duplicate'
  | 'crlf';

const CORRUPTIONS: Corruption[] = [
  'dropField',
  'extraField',
  'emptyLine',
  'blankLine',
  'tsText',
  'tsNaN',
  'tsNegative',
  'tsHuge',
  'tsUnsafe',
  'tsDecimal',
  'bytesText',
  'bytesNegative',
  'bytesHuge',
  'bytesExponent',
  'bytesSpace',
  'emptyComponent',
  'unbalancedQuote',
  'strayQuote',
  'binaryInComponent',
  'binaryInNumber',
  'bomMidFile',
  'backInTime',
  'duplicate',
  'crlf',
];

/** The corrupted line(s) for row `row`, and whether they are valid (then the row stays in the trace). */
function corrupt(row: Row, kind: Corruption, previous: Row | undefined): { lines: string[]; bad: boolean; keepsRow: boolean } {
  const line = rowLine(row);
  const bad = (text: string) => ({ lines: [text], bad: true, keepsRow: false });
  switch (kind) {
    case 'dropField':
      return bad(`${row.t},${quote(row.component)}`);
    case 'extraField':
      return bad(`${line},1`);
    case 'emptyLine':
      return { lines: ['', line], bad: false, keepsRow: true };
    case 'blankLine':
      return { lines: ['  \t', line], bad: false, keepsRow: true };
    case 'tsText':
      return bad(`t${row.t},${quote(row.component)},${row.bytes}`);
    case 'tsNaN':
      return bad(`NaN,${quote(row.component)},${row.bytes}`);
    case 'tsNegative':
      return bad(`-${row.t},${quote(row.component)},${row.bytes}`);
    case 'tsHuge':
      return bad(`${'9'.repeat(400)},${quote(row.component)},${row.bytes}`);
    case 'tsUnsafe':
      return bad(`9007199254740993,${quote(row.component)},${row.bytes}`);
    case 'tsDecimal':
      return bad(`${row.t}.5,${quote(row.component)},${row.bytes}`);
    case 'bytesText':
      return bad(`${row.t},${quote(row.component)},lots`);
    case 'bytesNegative':
      return bad(`${row.t},${quote(row.component)},-${row.bytes + 1}`);
    case 'bytesHuge':
      return bad(`${row.t},${quote(row.component)},1${'0'.repeat(30)}`);
    case 'bytesExponent':
      return bad(`${row.t},${quote(row.component)},1e6`);
    case 'bytesSpace':
      return bad(`${row.t},${quote(row.component)}, ${row.bytes}`);
    case 'emptyComponent':
      return bad(`${row.t},,${row.bytes}`);
    case 'unbalancedQuote':
      return bad(`${row.t},"${row.component},${row.bytes}`);
    case 'strayQuote':
      return bad(`${row.t},ab"c,${row.bytes}`);
    case 'binaryInComponent':
      // Bytes that are not UTF-8 (decoded as U+FFFD) and a NUL: still a name.
      return { lines: [`${row.t},bin\u0000\u00ff${row.component.replace(/[",]/g, '')},${row.bytes}`], bad: false, keepsRow: false };
    case 'binaryInNumber':
      return bad(`${row.t},${quote(row.component)},12\u0000${row.bytes}`);
    case 'bomMidFile':
      return bad(`\uFEFF${line}`);
    case 'backInTime':
      return previous && previous.t > 0 ? bad(`${previous.t - 1},zzz,${row.bytes}`) : { lines: [line], bad: false, keepsRow: true };
    case 'duplicate':
      return { lines: [line, line], bad: true, keepsRow: false };
    case 'crlf':
      return { lines: [`${line}\r`], bad: false, keepsRow: true };
  }
}

interface Case {
  text: string;
  /** 1-based line of the first bad line, or null when the trace is valid. */
  firstBad: number | null;
  /** Valid rows as the reader must return them. */
  rows: Row[] | null;
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    rows: rowsArb,
    corruptions: fc.array(fc.tuple(fc.nat(), fc.constantFrom(...CORRUPTIONS)), { maxLength: 3 }),
    bom: fc.boolean(),
    crlf: fc.boolean(),
    trailingNewline: fc.boolean(),
  })
  .map(({ rows, corruptions, bom, crlf, trailingNewline }) => {
    const byRow = new Map<number, Corruption>();
    for (const [at, kind] of corruptions) if (rows.length) byRow.set(at % rows.length, kind);
    const lines = [`${bom ? '\uFEFF' : ''}${TRACE_HEADER}`];
    let firstBad: number | null = null;
    const kept: Row[] = [];
    rows.forEach((row, i) => {
      // A lone \r before a \r\n would be one more line break (readline, like editors, counts it): only without CRLF.
      const kind = byRow.get(i) === 'crlf' && crlf ? undefined : byRow.get(i);
      if (kind === undefined) {
        lines.push(rowLine(row));
        kept.push(row);
        return;
      }
      const corrupted = corrupt(row, kind, rows[i - 1]);
      // The bad line is the last one written for this row (an empty line or a first copy come before it).
      if (corrupted.bad && firstBad === null) firstBad = lines.length + corrupted.lines.length;
      lines.push(...corrupted.lines);
      if (corrupted.keepsRow) kept.push(row);
    });
    const text = lines.join(crlf ? '\r\n' : '\n') + (trailingNewline ? (crlf ? '\r\n' : '\n') : '');
    const changesRows = [...byRow.values()].some((kind) => kind === 'binaryInComponent');
    return { text, firstBad, rows: firstBad === null && !changesRows ? kept : null };
  });

/** Samples → rows again (order within a timestamp: components, then system rows, as readTrace groups them). */
function rowsOf(samples: TraceSample[]): Array<[number, string, number]> {
  const out: Array<[number, string, number]> = [];
  for (const s of samples) {
    for (const [name, bytes] of s.components) out.push([s.timestampMs, name, bytes]);
    if (s.totalBytes !== null) out.push([s.timestampMs, 'system.total', s.totalBytes]);
    if (s.availableBytes !== null) out.push([s.timestampMs, 'system.available', s.availableBytes]);
  }
  return out.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
}

describe('regressions found by the fuzzing', () => {
  // src/sources/traceCsv.ts checked duplicates for components only: a second system.total or
  // system.available row at the same timestamp silently replaced the first.
  it('a system row twice at one timestamp is an error naming the second line', async () => {
    for (const name of ['system.total', 'system.available', 'ollama']) {
      const text = `${TRACE_HEADER}\n1000,${name},5\n1000,engine,1\n1000,${name},6\n`;
      const result = await read(Buffer.from(text), 64);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error.message).toBe(`fuzz.csv:4: component "${name}" appears twice at 1000`);
    }
  });
});

describe('fuzz: trace CSV', () => {
  it('valid traces with corruptions: exactly the rows, or a TraceError at the first bad line', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, fc.integer({ min: 1, max: 64 }), async ({ text, firstBad, rows }, chunk) => {
        const result = await read(Buffer.from(text, 'utf8'), chunk);
        if (firstBad === null) {
          expect(result.ok, result.ok ? '' : result.error.message).toBe(true);
          if (result.ok && rows) {
            const expected = rows.map((r): [number, string, number] => [r.t, r.component, r.bytes]).sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
            expect(rowsOf(result.samples)).toEqual(expected);
          }
        } else {
          expect(result.ok, `expected an error at line ${firstBad}`).toBe(false);
          if (!result.ok) {
            expectTraceError(result.error, lineCount(text));
            expect(result.error.line, result.error.message).toBe(firstBad);
          }
        }
      }),
      { numRuns: runs(400) },
    );
  });

  it('random bytes, random text and random lines after a valid header: rows or a TraceError naming a line', async () => {
    const lineArb = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.string({ unit: fc.constantFrom(...'0123456789,"-.e \t\r\nabcNa'.split('')), maxLength: 30 }),
      fc.tuple(fc.nat(), fc.string({ maxLength: 8 }), fc.nat()).map(([t, c, b]) => `${t},${c},${b}`),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
          fc.string({ unit: 'binary', maxLength: 200 }).map((text) => Buffer.from(text, 'utf8')),
          fc.array(lineArb, { maxLength: 20 }).map((lines) => Buffer.from([TRACE_HEADER, ...lines].join('\n'), 'utf8')),
          fc.tuple(fc.uint8Array({ maxLength: 100 }), fc.array(lineArb, { maxLength: 5 })).map(([junk, lines]) => Buffer.concat([Buffer.from(`${TRACE_HEADER}\n`), Buffer.from(junk), Buffer.from(lines.join('\n'))])),
        ),
        fc.integer({ min: 1, max: 64 }),
        async (bytes, chunk) => {
          const result = await read(bytes, chunk);
          if (!result.ok) expectTraceError(result.error, lineCount(bytes.toString('utf8')) + 1);
          else for (const sample of result.samples) expect(Number.isSafeInteger(sample.timestampMs)).toBe(true);
        },
      ),
      { numRuns: runs(400) },
    );
  });

  it('memtide analyze: a result, or a TraceError naming FILE:line with nothing printed (never half an answer)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ text, firstBad }) => {
        const file = traceFile(Buffer.from(text, 'utf8'));
        const printed: string[] = [];
        let error: unknown = null;
        try {
          await analyzeCommand([file, '--format', 'json'], (out) => printed.push(out));
        } catch (caught) {
          error = caught;
        }
        if (error === null) {
          expect(firstBad).toBeNull();
          expect(printed).toHaveLength(1);
          expect(Object.keys(JSON.parse(printed[0] as string) as object)).toEqual(['leaks', 'pressure', 'alerts']);
        } else {
          expect(error, String((error as Error).stack)).toBeInstanceOf(TraceError);
          expect((error as TraceError).message.startsWith(`${file}:${firstBad}: `), (error as TraceError).message).toBe(true);
          expect(printed).toEqual([]);
        }
      }),
      { numRuns: runs(60) },
    );
  });
});
