import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { fc, it as propIt } from '@fast-check/vitest';
import { describe, expect, it, vi } from 'vitest';
import type { Alert, ComponentUsage, MemorySample, PressureChange, SystemMemory } from '../src/model.js';
import {
  HISTORY_SCHEMA_VERSION,
  HistoryError,
  HistoryStore,
  PAGE_CACHE_KIB,
  type ActionEntry,
  type ComponentPoint,
  type HistoryErrorCode,
  type HistoryStoreConfig,
} from '../src/sinks/historyStore.js';
import { historyFiles } from './support/historyFiles.js';

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** A bucket-aligned start time (divisible by 60 000). */
const T0 = 1_700_000_040_000;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const { dir: tmpRoot, freshPath, open: openStore } = historyFiles('memtide-history-');

type UsageInput = number | (Partial<ComponentUsage> & { rssBytes: number });

function sample(
  timestampMs: number,
  components: Record<string, UsageInput>,
  system: Partial<SystemMemory> = {},
): MemorySample {
  const usage = Object.fromEntries(
    Object.entries(components).map(([name, u]): [string, ComponentUsage] => {
      const input = typeof u === 'number' ? { rssBytes: u } : u;
      return [name, { pssBytes: null, processCount: 1, ...input, pssAnonBytes: input.pssAnonBytes ?? null }];
    }),
  );
  return {
    timestampMs,
    system: {
      totalBytes: 16_000,
      availableBytes: 8_000,
      usedBytes: 8_000,
      swapTotalBytes: 2_000,
      swapUsedBytes: 0,
      psi: null,
      physicalTotalBytes: 16_000,
      cgroupLimitBytes: null,
      ...system,
    },
    components: usage,
    processes: [],
    self: {
      pid: 1,
      rssBytes: 1,
      heapUsedBytes: 1,
      heapTotalBytes: 1,
      externalBytes: 0,
      arrayBuffersBytes: 0,
      sampleCpuMs: 0,
    },
  };
}

function expectHistoryError(fn: () => unknown, code: HistoryErrorCode, messagePart?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(HistoryError);
  expect((caught as HistoryError).code).toBe(code);
  if (messagePart !== undefined) expect((caught as HistoryError).message).toContain(messagePart);
}

/** Reads the file through a separate connection (what another process would see). */
function inspect<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function collectCsv(store: HistoryStore, query: { sinceMs: number; untilMs?: number }): { text: string; rows: number; chunks: string[] } {
  const chunks: string[] = [];
  const rows = store.exportCsv({ write: (chunk) => chunks.push(chunk) }, query);
  return { text: chunks.join(''), rows, chunks };
}

// ---------------------------------------------------------------------------
// Opening, WAL, migrations
// ---------------------------------------------------------------------------

describe('HistoryStore: opening', () => {
  it('uses WAL: journal_mode is wal and a -wal file exists after a write', () => {
    const file = freshPath();
    const store = openStore(file);
    store.append([sample(T0, { ollama: 100 })]);
    expect(store.journalMode()).toBe('wal');
    // SQLite's 2 MB default, not better-sqlite3's 16 MB per connection (docs/soak.md: the runner's slow warm-up).
    expect(store.pageCacheKiB()).toBe(PAGE_CACHE_KIB);
    expect(PAGE_CACHE_KIB).toBe(2000);
    expect(fs.existsSync(`${file}-wal`)).toBe(true);
    // WAL is persistent: another connection sees it too.
    expect(inspect(file, (db) => db.pragma('journal_mode', { simple: true }))).toBe('wal');
  });

  it('checkpoint(TRUNCATE) empties the WAL file', () => {
    const file = freshPath();
    const store = openStore(file);
    store.append([sample(T0, { ollama: 100 })]);
    expect(fs.statSync(`${file}-wal`).size).toBeGreaterThan(0);
    const result = store.checkpoint();
    expect(result.busy).toBe(false);
    expect(fs.statSync(`${file}-wal`).size).toBe(0);
  });

  it('keeps data and user_version across close and reopen', () => {
    const file = freshPath();
    const first = openStore(file);
    first.append([sample(T0, { ollama: 123, whisper: 45 })], [{ atMs: T0, level: 'high', previous: 'low', reasons: ['a'] }]);
    first.close();
    expect(first.isOpen).toBe(false);

    const second = openStore(file);
    expect(second.schemaVersion()).toBe(HISTORY_SCHEMA_VERSION);
    expect([...second.componentSeries({ sinceMs: 0 })].map((p) => [p.component, p.rssBytes])).toEqual([
      ['ollama', 123],
      ['whisper', 45],
    ]);
    expect([...second.pressureEvents({ sinceMs: 0 })]).toEqual([
      { atMs: T0, level: 'high', previous: 'low', reasons: ['a'] },
    ]);
  });

  it('migrations are idempotent: reopening does not re-run or alter the schema', () => {
    const file = freshPath();
    const schemaOf = (): unknown => inspect(file, (db) => db.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all());
    openStore(file).close();
    const schema = schemaOf();
    expect(inspect(file, (db) => db.pragma('user_version', { simple: true }))).toBe(HISTORY_SCHEMA_VERSION);
    for (let i = 0; i < 3; i++) {
      const store = openStore(file);
      store.append([sample(T0 + i, { ollama: i })]);
      store.close();
    }
    expect(schemaOf()).toEqual(schema);
    expect(inspect(file, (db) => db.pragma('user_version', { simple: true }))).toBe(HISTORY_SCHEMA_VERSION);
    const store = openStore(file);
    expect([...store.componentSeries({ sinceMs: 0 })]).toHaveLength(3);
  });

  it('close() is idempotent and later use fails with MEMTIDE_ERR_HISTORY_CLOSED', () => {
    const store = openStore(freshPath());
    store.close();
    expect(() => store.close()).not.toThrow();
    expectHistoryError(() => store.append([sample(T0, { ollama: 1 })]), 'MEMTIDE_ERR_HISTORY_CLOSED');
    expectHistoryError(() => [...store.componentSeries({ sinceMs: 0 })], 'MEMTIDE_ERR_HISTORY_CLOSED');
  });

  it('rejects a database written by a newer schema, without touching it', () => {
    const file = freshPath();
    const db = new Database(file);
    db.pragma(`user_version = ${HISTORY_SCHEMA_VERSION + 1}`);
    db.close();
    expectHistoryError(() => HistoryStore.open(file, {}), 'MEMTIDE_ERR_HISTORY_VERSION', file);
    expect(inspect(file, (d) => d.pragma('journal_mode', { simple: true }))).toBe('delete');
    expect(inspect(file, (d) => d.pragma('user_version', { simple: true }))).toBe(HISTORY_SCHEMA_VERSION + 1);
  });

  it('rejects a file that is not a SQLite database, naming the path', () => {
    const file = freshPath();
    fs.writeFileSync(file, 'timestamp_ms,component,rss_bytes\n'.repeat(200));
    expectHistoryError(() => HistoryStore.open(file, {}), 'MEMTIDE_ERR_HISTORY_OPEN', file);
  });

  it('rejects a path in a missing directory, naming the path', () => {
    const file = path.join(tmpRoot, 'no-such-dir', 'history.db');
    expectHistoryError(() => HistoryStore.open(file, {}), 'MEMTIDE_ERR_HISTORY_OPEN', file);
  });

  it('rejects invalid config and a bucket width different from the file', () => {
    expectHistoryError(() => HistoryStore.open(':memory:', { aggregateBucketMs: 0 }), 'MEMTIDE_ERR_HISTORY_CONFIG');
    expectHistoryError(
      () => HistoryStore.open(':memory:', { rawRetentionMs: 2 * DAY, aggregateRetentionMs: DAY }),
      'MEMTIDE_ERR_HISTORY_CONFIG',
    );
    const file = freshPath();
    openStore(file, { aggregateBucketMs: MIN }).close();
    expectHistoryError(() => HistoryStore.open(file, { aggregateBucketMs: 5 * MIN }), 'MEMTIDE_ERR_HISTORY_CONFIG', file);
  });

  it('an append that fails writes nothing (one transaction) and reports MEMTIDE_ERR_HISTORY_WRITE', () => {
    const store = openStore(freshPath());
    const bad = sample(T0 + 1, { ollama: 1 });
    bad.timestampMs = Number.NaN; // NOT NULL violation, after a good sample in the same batch
    expectHistoryError(() => store.append([sample(T0, { ollama: 1 }), bad]), 'MEMTIDE_ERR_HISTORY_WRITE');
    expect([...store.componentSeries({ sinceMs: 0, resolution: 'raw' })]).toEqual([]);
    expect([...store.componentSeries({ sinceMs: 0, resolution: 'aggregate' })]).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Retention and downsampling
// ---------------------------------------------------------------------------

describe('HistoryStore: retention with downsampling', () => {
  /**
   * Bucket T0 gets 4 samples (ollama 100, 300, 200, 400; available 5000..8000),
   * bucket T0+1min one. Retention at T0 + 24h + 30s cuts raw at T0 + 30s.
   */
  function seeded(): HistoryStore {
    const store = openStore(freshPath());
    store.append([
      sample(T0, { ollama: { rssBytes: 100, pssBytes: 90, processCount: 1 }, whisper: 10 }, { availableBytes: 5_000 }),
      sample(T0 + 10 * SEC, { ollama: { rssBytes: 300, pssBytes: null, processCount: 3 }, whisper: 20 }, { availableBytes: 8_000 }),
      sample(T0 + 20 * SEC, { ollama: { rssBytes: 200, pssBytes: 110, processCount: 2 }, whisper: 30 }, { availableBytes: 6_000 }),
      sample(T0 + 50 * SEC, { ollama: { rssBytes: 400, pssBytes: null, processCount: 1 }, whisper: 40 }, { availableBytes: 7_001 }),
      sample(T0 + 70 * SEC, { ollama: 1_000, whisper: 50 }, { availableBytes: 4_000 }),
    ]);
    return store;
  }

  it('deletes raw rows older than 24h but keeps min/max/avg of their minutes', () => {
    const store = seeded();
    const result = store.applyRetention(T0 + DAY + 20 * SEC);
    // Cut at T0 + 20s: 2 samples x (2 component rows + 1 system row) are
    // strictly older; the one exactly 24h old stays. No bucket is 30 days old.
    expect(result).toEqual({ rawDeleted: 6, aggregatesDeleted: 0, pressureDeleted: 0 });

    const raw = [...store.componentSeries({ sinceMs: 0, component: 'ollama', resolution: 'raw' })];
    expect(raw.map((p) => p.timestampMs)).toEqual([T0 + 20 * SEC, T0 + 50 * SEC, T0 + 70 * SEC]);

    const buckets = [...store.componentSeries({ sinceMs: 0, component: 'ollama', resolution: 'aggregate' })];
    expect(buckets).toEqual([
      {
        timestampMs: T0,
        component: 'ollama',
        rssBytes: 250, // (100 + 300 + 200 + 400) / 4
        rssMinBytes: 100,
        rssMaxBytes: 400,
        pssBytes: 100, // (90 + 110) / 2: only samples that had PSS
        processCount: 3, // max
        sampleCount: 4,
        resolution: 'aggregate',
      },
      {
        timestampMs: T0 + MIN,
        component: 'ollama',
        rssBytes: 1_000,
        rssMinBytes: 1_000,
        rssMaxBytes: 1_000,
        pssBytes: null,
        processCount: 1,
        sampleCount: 1,
        resolution: 'aggregate',
      },
    ]);

    const system = [...store.systemSeries({ sinceMs: 0, resolution: 'aggregate' })][0];
    expect(system).toMatchObject({
      timestampMs: T0,
      availableBytes: 6_500, // (5000 + 8000 + 6000 + 7001) / 4 = 6500.25, rounded
      availableMinBytes: 5_000,
      availableMaxBytes: 8_000,
      totalBytes: 16_000,
      sampleCount: 4,
    });
  });

  it('deletes a bucket only once all of it is older than the aggregate retention', () => {
    const store = seeded();
    store.append([], [{ atMs: T0 + 5 * SEC, level: 'medium', previous: null, reasons: [] }]);
    // Cut at T0 + 30s: bucket T0 is only half expired, so it stays; the pressure event goes.
    expect(store.applyRetention(T0 + 30 * DAY + 30 * SEC)).toEqual({ rawDeleted: 15, aggregatesDeleted: 0, pressureDeleted: 1 });
    // Cut at T0 + 1min: bucket T0 (2 components + system) is now entirely older.
    expect(store.applyRetention(T0 + 30 * DAY + MIN)).toEqual({ rawDeleted: 0, aggregatesDeleted: 3, pressureDeleted: 0 });
    expect([...store.componentSeries({ sinceMs: 0, resolution: 'aggregate' })].map((p) => p.timestampMs)).toEqual([
      T0 + MIN,
      T0 + MIN,
    ]);
  });

  it("componentSeries ('auto') switches to aggregates where raw rows may be gone", () => {
    const store = seeded();
    // Before any retention everything is served raw.
    expect(new Set([...store.componentSeries({ sinceMs: 0 })].map((p) => p.resolution))).toEqual(new Set(['raw']));

    store.applyRetention(T0 + DAY + 30 * SEC);
    const summary = (points: Iterable<ComponentPoint>): [number, string, number, string][] =>
      [...points].map((p) => [p.timestampMs - T0, p.component, p.rssBytes, p.resolution]);

    // The bucket holding the cut (T0 .. T0+1min) comes from aggregates, even
    // though the raw row at T0+50s still exists: no minute is counted twice.
    expect(summary(store.componentSeries({ sinceMs: T0 - HOUR }))).toEqual([
      [0, 'ollama', 250, 'aggregate'],
      [0, 'whisper', 25, 'aggregate'],
      [70 * SEC, 'ollama', 1_000, 'raw'],
      [70 * SEC, 'whisper', 50, 'raw'],
    ]);
    // An old range only: aggregates only.
    expect(summary(store.componentSeries({ sinceMs: T0, untilMs: T0 + 30 * SEC, component: 'whisper' }))).toEqual([
      [0, 'whisper', 25, 'aggregate'],
    ]);
    // A recent range only: raw only.
    expect(summary(store.componentSeries({ sinceMs: T0 + MIN, component: 'ollama' }))).toEqual([
      [70 * SEC, 'ollama', 1_000, 'raw'],
    ]);
    // The system series switches at the same boundary.
    expect([...store.systemSeries({ sinceMs: 0 })].map((p) => [p.timestampMs - T0, p.availableBytes, p.resolution])).toEqual([
      [0, 6_500, 'aggregate'],
      [70 * SEC, 4_000, 'raw'],
    ]);
  });

  it('the switch point is stored in the file: a reopened store (or another process) sees it', () => {
    const file = freshPath();
    const store = openStore(file);
    store.append([sample(T0, { ollama: 1 }), sample(T0 + 2 * MIN, { ollama: 2 })]);
    store.applyRetention(T0 + DAY + MIN);
    store.close();
    const reopened = openStore(file);
    expect([...reopened.componentSeries({ sinceMs: 0 })].map((p) => p.resolution)).toEqual(['aggregate', 'raw']);
  });

  it('streams pressure events in a range, oldest first', () => {
    const store = openStore(freshPath());
    const events: PressureChange[] = [
      { atMs: T0 + 2, level: 'critical', previous: 'high', reasons: ['available 3% <= 5%', 'psi full 12'] },
      { atMs: T0, level: 'low', previous: null, reasons: [] },
      { atMs: T0 + 1, level: 'high', previous: 'low', reasons: ['available 8.1% <= 10%'] },
    ];
    store.append([], events);
    expect([...store.pressureEvents({ sinceMs: T0, untilMs: T0 + 2 })].map((e) => e.level)).toEqual(['low', 'high']);
    expect([...store.pressureEvents({ sinceMs: T0 + 2 })]).toEqual([events[0]]);
  });
});

// ---------------------------------------------------------------------------
// CSV export
// ---------------------------------------------------------------------------

describe('HistoryStore: exportCsv', () => {
  it('writes the trace format ordered by timestamp then component', () => {
    const store = openStore(freshPath());
    store.append([
      sample(T0, { whisper: 300, ollama: 200, zeta: 5 }, { totalBytes: 1_000, availableBytes: 600 }),
      sample(T0 + 1_000, { ollama: 250, 'odd,"name"': 7 }, { totalBytes: 1_000, availableBytes: 550 }),
    ]);
    const { text, rows } = collectCsv(store, { sinceMs: T0 });
    expect(text).toBe(
      [
        'timestamp_ms,component,rss_bytes',
        `${T0},ollama,200`,
        `${T0},system.available,600`,
        `${T0},system.total,1000`,
        `${T0},whisper,300`,
        `${T0},zeta,5`,
        `${T0 + 1000},"odd,""name""",7`,
        `${T0 + 1000},ollama,250`,
        `${T0 + 1000},system.available,550`,
        `${T0 + 1000},system.total,1000`,
        '',
      ].join('\n'),
    );
    expect(rows).toBe(9);
    // untilMs is exclusive.
    expect(collectCsv(store, { sinceMs: T0, untilMs: T0 + 1_000 }).rows).toBe(5);
  });

  it('exports aggregates (bucket start, average) for ranges past raw retention', () => {
    const store = openStore(freshPath());
    store.append([
      sample(T0, { ollama: 100 }, { availableBytes: 500 }),
      sample(T0 + 30 * SEC, { ollama: 201 }, { availableBytes: 700 }),
      sample(T0 + 2 * MIN, { ollama: 400 }, { availableBytes: 300 }),
    ]);
    store.applyRetention(T0 + DAY + MIN);
    expect(collectCsv(store, { sinceMs: 0 }).text).toBe(
      [
        'timestamp_ms,component,rss_bytes',
        `${T0},ollama,151`, // 150.5 rounded
        `${T0},system.available,600`,
        `${T0},system.total,16000`,
        `${T0 + 2 * MIN},ollama,400`,
        `${T0 + 2 * MIN},system.available,300`,
        `${T0 + 2 * MIN},system.total,16000`,
        '',
      ].join('\n'),
    );
  });

  it('writes only the header for an empty range', () => {
    const store = openStore(freshPath());
    expect(collectCsv(store, { sinceMs: 0 })).toEqual({ text: 'timestamp_ms,component,rss_bytes\n', rows: 0, chunks: ['timestamp_ms,component,rss_bytes\n'] });
  });
});

// ---------------------------------------------------------------------------
// Streaming on a large table
// ---------------------------------------------------------------------------

describe('HistoryStore: streaming queries', () => {
  it('iterates 100k rows lazily, never with .all()', () => {
    const store = openStore(freshPath());
    const components = ['meetily', 'ollama', 'whisper', 'zed'];
    const samples: MemorySample[] = [];
    for (let i = 0; i < 25_000; i++) {
      samples.push(sample(T0 + i * SEC, Object.fromEntries(components.map((c, k) => [c, i * 4 + k]))));
    }
    store.append(samples);

    // Spy after opening: `db.pragma()` (used by open) is implemented with `.all()`.
    const probe = new Database(':memory:');
    const statementPrototype = Object.getPrototypeOf(probe.prepare('SELECT 1')) as { all: () => unknown };
    probe.close();
    const allSpy = vi.spyOn(statementPrototype, 'all');
    try {
      // Lazy: taking 3 points and stopping releases the cursor (a write works again).
      const series = store.componentSeries({ sinceMs: 0 });
      const firstThree = [series.next().value, series.next().value, series.next().value].map((p) => p?.rssBytes);
      expect(firstThree).toEqual([0, 1, 2]);
      expectHistoryError(() => store.append([sample(T0 - 1, { x: 1 })]), 'MEMTIDE_ERR_HISTORY_WRITE', 'iterator');
      series.return();
      store.append([sample(T0 - 1, { x: 1 })]);

      let count = 0;
      let previous = -1;
      let ordered = true;
      for (const p of store.componentSeries({ sinceMs: T0 })) {
        count++;
        ordered &&= p.rssBytes === previous + 1;
        previous = p.rssBytes;
      }
      expect(count).toBe(100_000);
      expect(ordered).toBe(true);
      expect([...store.componentSeries({ sinceMs: T0, component: 'zed' })]).toHaveLength(25_000);

      // Two queries of the same kind open at once do not collide.
      const outer = store.systemSeries({ sinceMs: T0 });
      outer.next();
      expect([...store.systemSeries({ sinceMs: T0, untilMs: T0 + 3 * SEC })]).toHaveLength(3);
      outer.return();

      const csv = collectCsv(store, { sinceMs: T0 });
      expect(csv.rows).toBe(150_000); // 4 components + 2 system rows per sample
      expect(csv.chunks.length).toBeGreaterThan(10);
      expect(Math.max(...csv.chunks.map((c) => c.length))).toBeLessThan(65 * 1024);
      expect(allSpy).not.toHaveBeenCalled();
    } finally {
      allSpy.mockRestore();
    }
  }, 30_000);
});

// ---------------------------------------------------------------------------
// Model-based test
// ---------------------------------------------------------------------------

/** Short retentions, so that cuts fall among the generated samples. */
const MODEL_CONFIG: HistoryStoreConfig = { rawRetentionMs: 2 * MIN, aggregateBucketMs: MIN, aggregateRetentionMs: 10 * MIN };
const MODEL_COMPONENTS = ['meetily', 'ollama', 'ollama.runner', 'whisper'] as const;
const GRID_MS = 10 * SEC;

interface ModelBucket {
  min: number;
  max: number;
  sum: number;
  count: number;
}

/** The plain in-memory twin of the store. */
interface Model {
  nowMs: number;
  lastTimestampMs: number;
  componentRows: { timestampMs: number; component: string; rssBytes: number }[];
  systemRows: number[];
  /** Key `${bucketMs}|${component}`. */
  buckets: Map<string, ModelBucket>;
  systemBuckets: Set<number>;
  horizonMs: number | null;
}

interface Real {
  file: string;
  store: HistoryStore;
}

interface SampleSpec {
  gapMs: number;
  usage: [string, number][];
}

function bucketKey(bucketMs: number, component: string): string {
  return `${bucketMs}|${component}`;
}

function modelAppend(model: Model, timestampMs: number, components: Record<string, number>): void {
  const bucketMs = Math.floor(timestampMs / MODEL_CONFIG.aggregateBucketMs) * MODEL_CONFIG.aggregateBucketMs;
  for (const [component, rssBytes] of Object.entries(components)) {
    model.componentRows.push({ timestampMs, component, rssBytes });
    const key = bucketKey(bucketMs, component);
    const b = model.buckets.get(key);
    if (b) {
      b.min = Math.min(b.min, rssBytes);
      b.max = Math.max(b.max, rssBytes);
      b.sum += rssBytes;
      b.count++;
    } else {
      model.buckets.set(key, { min: rssBytes, max: rssBytes, sum: rssBytes, count: 1 });
    }
  }
  model.systemRows.push(timestampMs);
  model.systemBuckets.add(bucketMs);
}

/** The same retention rule as the store, written naively. */
function modelRetain(model: Model): { rawDeleted: number; aggregatesDeleted: number } {
  const rawCut = model.nowMs - MODEL_CONFIG.rawRetentionMs;
  const bucketCut =
    Math.floor((model.nowMs - MODEL_CONFIG.aggregateRetentionMs) / MODEL_CONFIG.aggregateBucketMs) * MODEL_CONFIG.aggregateBucketMs;
  const before = model.componentRows.length + model.systemRows.length;
  model.componentRows = model.componentRows.filter((r) => r.timestampMs >= rawCut);
  model.systemRows = model.systemRows.filter((t) => t >= rawCut);
  let aggregatesDeleted = 0;
  for (const key of [...model.buckets.keys()]) {
    if (Number(key.split('|')[0]) < bucketCut) {
      model.buckets.delete(key);
      aggregatesDeleted++;
    }
  }
  for (const b of [...model.systemBuckets]) {
    if (b < bucketCut) {
      model.systemBuckets.delete(b);
      aggregatesDeleted++;
    }
  }
  model.horizonMs = Math.max(model.horizonMs ?? rawCut, rawCut);
  return { rawDeleted: before - model.componentRows.length - model.systemRows.length, aggregatesDeleted };
}

function expectedAutoSeries(model: Model): [number, string, number, string][] {
  const step = MODEL_CONFIG.aggregateBucketMs;
  const boundary = model.horizonMs === null ? -Infinity : Math.ceil(model.horizonMs / step) * step;
  const fromBuckets = [...model.buckets.entries()]
    .map(([key, b]): [number, string, number, string] => {
      const [bucket = '', component = ''] = key.split('|');
      return [Number(bucket), component, Math.round(b.sum / b.count), 'aggregate'];
    })
    .filter(([t]) => t < boundary);
  const fromRaw = model.componentRows
    .filter((r) => r.timestampMs >= boundary)
    .map((r): [number, string, number, string] => [r.timestampMs, r.component, r.rssBytes, 'raw']);
  const byTimeThenName = (a: [number, string, number, string], b: [number, string, number, string]): number =>
    a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
  return [...fromBuckets.sort(byTimeThenName), ...fromRaw.sort(byTimeThenName)];
}

function countBy<T>(items: Iterable<T>, keyOf: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[keyOf(item)] = (counts[keyOf(item)] ?? 0) + 1;
  return counts;
}

/** Everything observable through the public API must agree with the model. */
function verify(model: Model, real: Real): void {
  const { store } = real;
  const all = { sinceMs: Number.MIN_SAFE_INTEGER };
  expect(countBy(store.componentSeries({ ...all, resolution: 'raw' }), (p) => p.component)).toEqual(
    countBy(model.componentRows, (r) => r.component),
  );
  expect([...store.systemSeries({ ...all, resolution: 'raw' })].map((p) => p.timestampMs)).toEqual(model.systemRows);

  const buckets = new Map(
    [...store.componentSeries({ ...all, resolution: 'aggregate' })].map((p) => [
      bucketKey(p.timestampMs, p.component),
      { min: p.rssMinBytes, max: p.rssMaxBytes, avg: p.rssBytes, count: p.sampleCount },
    ]),
  );
  const expectedBuckets = new Map(
    [...model.buckets].map(([key, b]) => [key, { min: b.min, max: b.max, avg: Math.round(b.sum / b.count), count: b.count }]),
  );
  expect(buckets).toEqual(expectedBuckets);
  expect(new Set([...store.systemSeries({ ...all, resolution: 'aggregate' })].map((p) => p.timestampMs))).toEqual(model.systemBuckets);

  expect([...store.componentSeries(all)].map((p) => [p.timestampMs, p.component, p.rssBytes, p.resolution])).toEqual(
    expectedAutoSeries(model),
  );
}

class AppendCommand implements fc.Command<Model, Real> {
  constructor(readonly samples: SampleSpec[]) {}
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    let t = Math.max(model.lastTimestampMs, model.nowMs);
    const batch: MemorySample[] = [];
    for (const spec of this.samples) {
      t += spec.gapMs;
      const components = Object.fromEntries(spec.usage);
      batch.push(sample(t, components));
      modelAppend(model, t, components);
    }
    real.store.append(batch);
    model.lastTimestampMs = t;
    model.nowMs = Math.max(model.nowMs, t);
    verify(model, real);
  }
  toString(): string {
    return `Append(${JSON.stringify(this.samples)})`;
  }
}

class AdvanceAndRetainCommand implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    model.nowMs += this.ms;
    const expected = modelRetain(model);
    const actual = real.store.applyRetention(model.nowMs);
    expect({ rawDeleted: actual.rawDeleted, aggregatesDeleted: actual.aggregatesDeleted }).toEqual(expected);
    verify(model, real);
  }
  toString(): string {
    return `AdvanceAndRetain(${this.ms})`;
  }
}

class ReopenCommand implements fc.Command<Model, Real> {
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    real.store.close();
    real.store = HistoryStore.open(real.file, MODEL_CONFIG);
    expect(real.store.schemaVersion()).toBe(HISTORY_SCHEMA_VERSION);
    verify(model, real);
  }
  toString(): string {
    return 'Reopen';
  }
}

class QueryCountCommand implements fc.Command<Model, Real> {
  constructor(readonly component: string) {}
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    const points = [...real.store.componentSeries({ sinceMs: Number.MIN_SAFE_INTEGER, component: this.component, resolution: 'raw' })];
    expect(points.every((p) => p.component === this.component)).toBe(true);
    expect(points).toHaveLength(model.componentRows.filter((r) => r.component === this.component).length);
  }
  toString(): string {
    return `QueryCount(${this.component})`;
  }
}

const sampleSpecArb: fc.Arbitrary<SampleSpec> = fc.record({
  // On a 10 s grid, like T0 and the clock advances, so that samples often land
  // exactly on a retention cut or a bucket edge (where off-by-one bugs live).
  gapMs: fc.integer({ min: 1, max: 18 }).map((n) => n * GRID_MS),
  // Duplicated names collapse (last wins), like object keys.
  usage: fc.array(fc.tuple(fc.constantFrom(...MODEL_COMPONENTS), fc.integer({ min: 0, max: 64 * 1024 ** 3 })), { maxLength: 4 }),
});

const commandsArb = fc.commands(
  [
    fc.array(sampleSpecArb, { minLength: 1, maxLength: 12 }).map((s) => new AppendCommand(s)),
    fc
      .oneof(
        { arbitrary: fc.integer({ min: 0, max: (5 * MIN) / GRID_MS }), weight: 4 },
        { arbitrary: fc.integer({ min: 0, max: (2 * HOUR) / GRID_MS }), weight: 1 },
      )
      .map((n) => new AdvanceAndRetainCommand(n * GRID_MS)),
    fc.constant(new ReopenCommand()),
    fc.constantFrom(...MODEL_COMPONENTS).map((c) => new QueryCountCommand(c)),
  ],
  { maxCommands: 25 },
);

describe('HistoryStore: model-based', () => {
  propIt.prop([commandsArb], { numRuns: 30 })('agrees with an in-memory model across appends, retention and reopen', (commands) => {
    const file = freshPath();
    const real: Real = { file, store: HistoryStore.open(file, MODEL_CONFIG) };
    const model: Model = {
      nowMs: T0,
      lastTimestampMs: T0,
      componentRows: [],
      systemRows: [],
      buckets: new Map(),
      systemBuckets: new Set(),
      horizonMs: null,
    };
    try {
      fc.modelRun(() => ({ model, real }), commands);
    } finally {
      real.store.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Alerts (schema version 2)
// ---------------------------------------------------------------------------

const V1_FIXTURE = fileURLToPath(new URL('./fixtures/history/v1.db', import.meta.url));

function alertAt(atMs: number, key: string, extra: Partial<Alert> = {}): Alert {
  return {
    key,
    kind: key.startsWith('leak:') ? 'leak' : 'pressure',
    severity: 'warning',
    status: 'firing',
    component: key.startsWith('leak:') ? key.slice(5) : null,
    atMs,
    sinceMs: atMs - 30 * SEC,
    repeat: 0,
    title: `${key} title`,
    message: `${key} message`,
    recommendations: [{ action: 'Unload the idle model llama3.1:8b', command: 'memtide models unload llama3.1:8b', expectedSavingBytes: 4_700_000_000 }],
    ...extra,
  };
}

describe('HistoryStore: migration from schema version 1', () => {
  it('opens a v1 file written by the previous code: migrates to the current version, data intact, alerts usable', () => {
    const file = freshPath();
    fs.copyFileSync(V1_FIXTURE, file);
    expect(inspect(file, (db) => db.pragma('user_version', { simple: true }))).toBe(1);
    expect(inspect(file, (db) => db.prepare(`SELECT name FROM sqlite_master WHERE name = 'alerts'`).all())).toEqual([]);

    const store = openStore(file);
    expect(HISTORY_SCHEMA_VERSION).toBe(3);
    expect(store.schemaVersion()).toBe(3);
    expect(store.journalMode()).toBe('wal');

    // The v1 rows, as the fixture README describes them.
    const raw = [...store.componentSeries({ sinceMs: 0, resolution: 'raw' })];
    expect(raw.filter((p) => p.component === 'ollama').map((p) => [p.timestampMs - T0, p.rssBytes, p.pssBytes])).toEqual(
      [0, 10, 20, 70, 80].map((s, i) => [s * SEC, 4_000_000_000 + i * 1_000_000, 4_000_000_000 + i * 1_000_000 - 1000]),
    );
    expect(raw.filter((p) => p.component === 'whisper').map((p) => p.rssBytes)).toEqual([0, 1, 2, 3, 4].map((i) => 300_000_000 + i));
    const buckets = [...store.componentSeries({ sinceMs: 0, resolution: 'aggregate', component: 'ollama' })];
    expect(buckets.map((b) => [b.timestampMs - T0, b.sampleCount, b.rssMinBytes, b.rssMaxBytes])).toEqual([
      [0, 3, 4_000_000_000, 4_002_000_000],
      [MIN, 2, 4_003_000_000, 4_004_000_000],
    ]);
    const system = [...store.systemSeries({ sinceMs: 0, resolution: 'raw' })];
    expect(system).toHaveLength(5);
    expect(system[0]).toMatchObject({ totalBytes: 8 * 1024 ** 3, availableBytes: 3 * 1024 ** 3, psiSomeAvg10: 1.5, psiFullAvg10: 0.25 });
    expect([...store.pressureEvents({ sinceMs: 0 })]).toEqual([
      { atMs: T0, level: 'low', previous: null, reasons: [] },
      { atMs: T0 + 70 * SEC, level: 'high', previous: 'low', reasons: ['available 18% <= 18%'] },
    ]);
    // The meta rows survive: the bucket width is still enforced.
    store.close();
    expectHistoryError(() => HistoryStore.open(file, { aggregateBucketMs: 5 * MIN }), 'MEMTIDE_ERR_HISTORY_CONFIG', '60000 ms buckets');

    const again = openStore(file);
    again.append([sample(T0 + 90 * SEC, { ollama: 5 })]);
    again.appendAlerts([alertAt(T0 + 95 * SEC, 'pressure')]);
    expect([...again.alerts({ sinceMs: 0 })]).toEqual([{ ...alertAt(T0 + 95 * SEC, 'pressure'), acknowledgedAtMs: null }]);
    expect([...again.componentSeries({ sinceMs: 0, resolution: 'raw', component: 'ollama' })]).toHaveLength(6);
    // version 3: the actions table, empty and usable
    expect(again.actions({ sinceMs: 0 })).toEqual([]);
    const id = again.insertAction(actionAt(T0 + 96 * SEC, 'shrink-caches'));
    expect(again.actions({ sinceMs: 0 })).toEqual([{ ...actionAt(T0 + 96 * SEC, 'shrink-caches'), id }]);
    expect(inspect(file, (db) => db.pragma('user_version', { simple: true }))).toBe(3);
  });

  it('the fixture itself is untouched (tests copy it)', () => {
    expect(inspect(V1_FIXTURE, (db) => db.pragma('user_version', { simple: true }))).toBe(1);
  });
});

describe('HistoryStore: alerts', () => {
  it('appends in one transaction and streams them back by time (write order within an instant), optionally by status', () => {
    const store = openStore(freshPath());
    const a = alertAt(T0, 'pressure');
    const b = alertAt(T0 + SEC, 'leak:ollama', { severity: 'critical', repeat: 1, component: 'ollama' });
    const c = alertAt(T0 + SEC, 'pressure', { status: 'resolved', recommendations: [] });
    const d = alertAt(T0 + 2 * SEC, 'leak:ollama', { status: 'resolved', recommendations: [], component: null });
    store.appendAlerts([a, b]);
    store.appendAlerts([c, d]);
    store.appendAlerts([]);
    const plain = (x: Alert) => ({ ...x, acknowledgedAtMs: null });
    expect([...store.alerts({ sinceMs: 0 })]).toEqual([a, b, c, d].map(plain));
    expect([...store.alerts({ sinceMs: T0 + SEC, untilMs: T0 + 2 * SEC })]).toEqual([b, c].map(plain));
    expect([...store.alerts({ sinceMs: 0, status: 'resolved' })]).toEqual([c, d].map(plain));
    expect([...store.alerts({ sinceMs: 0, status: 'firing' })]).toEqual([a, b].map(plain));
  });

  it('appendAlerts is all or nothing', () => {
    const store = openStore(freshPath());
    const bad = alertAt(T0 + SEC, 'pressure', { status: 'exploded' as never });
    expectHistoryError(() => store.appendAlerts([alertAt(T0, 'pressure'), bad]), 'MEMTIDE_ERR_HISTORY_WRITE', 'CHECK constraint');
    expect([...store.alerts({ sinceMs: 0 })]).toEqual([]);
  });

  it('acknowledgeAlert marks the not yet acknowledged notifications of a key up to a time, once', () => {
    const store = openStore(freshPath());
    store.appendAlerts([alertAt(T0, 'pressure'), alertAt(T0 + SEC, 'leak:ollama'), alertAt(T0 + 2 * SEC, 'pressure', { repeat: 1 }), alertAt(T0 + 9 * SEC, 'pressure', { repeat: 2 })]);
    expect(store.acknowledgeAlert('pressure', T0 + 5 * SEC)).toBe(2);
    expect(store.acknowledgeAlert('pressure', T0 + 6 * SEC)).toBe(0);
    expect(store.acknowledgeAlert('nope', T0 + 6 * SEC)).toBe(0);
    expect([...store.alerts({ sinceMs: 0 })].map((x) => [x.key, x.atMs - T0, x.acknowledgedAtMs === null ? null : x.acknowledgedAtMs - T0])).toEqual([
      ['pressure', 0, 5 * SEC],
      ['leak:ollama', SEC, null],
      ['pressure', 2 * SEC, 5 * SEC],
      ['pressure', 9 * SEC, null],
    ]);
    expect(store.acknowledgeAlert('pressure', T0 + 10 * SEC)).toBe(1);
  });

  it('alerts follow the aggregate retention, reported as alertsDeleted', () => {
    const store = openStore(freshPath(), { rawRetentionMs: HOUR, aggregateRetentionMs: DAY });
    store.appendAlerts([alertAt(T0, 'pressure'), alertAt(T0 + HOUR, 'pressure')]);
    expect(store.applyRetention(T0 + DAY + 30 * MIN)).toEqual({ rawDeleted: 0, aggregatesDeleted: 0, pressureDeleted: 0, alertsDeleted: 1 });
    expect([...store.alerts({ sinceMs: 0 })].map((x) => x.atMs)).toEqual([T0 + HOUR]);
    expect(store.applyRetention(T0 + DAY + 40 * MIN)).toEqual({ rawDeleted: 0, aggregatesDeleted: 0, pressureDeleted: 0 });
  });

  it('an undecodable stored alert is MEMTIDE_ERR_HISTORY_CORRUPT, naming it', () => {
    const file = freshPath();
    openStore(file).close();
    const db = new Database(file);
    db.prepare(
      `INSERT INTO alerts (at_ms, key, kind, severity, status, component, since_ms, repeat, title, message, recommendations)
       VALUES (1, 'weird', 'weather', 'warning', 'firing', NULL, 0, 0, 't', 'm', '[]')`,
    ).run();
    db.prepare(
      `INSERT INTO alerts (at_ms, key, kind, severity, status, component, since_ms, repeat, title, message, recommendations)
       VALUES (2, 'broken', 'pressure', 'warning', 'firing', NULL, 0, 0, 't', 'm', '{not json')`,
    ).run();
    db.close();
    const store = openStore(file);
    expectHistoryError(() => [...store.alerts({ sinceMs: 0, untilMs: 2 })], 'MEMTIDE_ERR_HISTORY_CORRUPT', 'weird at 1');
    expectHistoryError(() => [...store.alerts({ sinceMs: 2 })], 'MEMTIDE_ERR_HISTORY_CORRUPT', 'broken at 2');
  });

  it('alert methods after close() fail with MEMTIDE_ERR_HISTORY_CLOSED', () => {
    const store = openStore(freshPath());
    store.close();
    expectHistoryError(() => store.appendAlerts([alertAt(T0, 'pressure')]), 'MEMTIDE_ERR_HISTORY_CLOSED');
    expectHistoryError(() => [...store.alerts({ sinceMs: 0 })], 'MEMTIDE_ERR_HISTORY_CLOSED');
    expectHistoryError(() => store.acknowledgeAlert('pressure', T0), 'MEMTIDE_ERR_HISTORY_CLOSED');
  });
});

// ---------------------------------------------------------------------------
// Actions (schema version 3)
// ---------------------------------------------------------------------------

function actionAt(atMs: number, kind: string, extra: Partial<ActionEntry> = {}): ActionEntry {
  return {
    atMs,
    source: 'coordinator',
    kind,
    level: 'high',
    target: 'engine',
    detail: 'caches to their small budget',
    reason: 'pressure high: optimization level aggressive acts from high',
    executed: true,
    error: null,
    componentBytesBefore: 300_000_000,
    availableBytesBefore: 1_000_000_000,
    componentBytesAfter: null,
    availableBytesAfter: null,
    measuredAtMs: null,
    undoneAtMs: null,
    ...extra,
  };
}

describe('HistoryStore: actions', () => {
  it('inserts on decision, updates memory after and the undo time, and lists newest first within a range and limit', () => {
    const store = openStore(freshPath());
    const a = store.insertAction(actionAt(T0, 'unload-idle-models', { target: 'ollama', detail: 'idle unpinned models' }));
    const b = store.insertAction(actionAt(T0 + SEC, 'shrink-caches', { executed: false }));
    const c = store.insertAction(actionAt(T0 + SEC, 'unload', { source: 'governor', level: null, target: 'ollama', detail: 'gemma3:4b (3.1 GiB)' }));
    expect(new Set([a, b, c]).size).toBe(3);
    expect(store.updateAction(b, { componentBytesAfter: 200_000_000, availableBytesAfter: 1_100_000_000, measuredAtMs: T0 + 31 * SEC })).toBe(true);
    // a later update sets only what it carries: the measurement stays
    expect(store.updateAction(b, { undoneAtMs: T0 + 5 * MIN })).toBe(true);
    expect(store.updateAction(b, { error: 'cache is gone' })).toBe(true);
    expect(store.updateAction(999, { undoneAtMs: 1 })).toBe(false);
    const all = store.actions({ sinceMs: 0 });
    expect(all.map((x) => x.id)).toEqual([c, b, a]);
    expect(all[1]).toEqual({
      ...actionAt(T0 + SEC, 'shrink-caches', { executed: false }),
      id: b,
      componentBytesAfter: 200_000_000,
      availableBytesAfter: 1_100_000_000,
      measuredAtMs: T0 + 31 * SEC,
      undoneAtMs: T0 + 5 * MIN,
      error: 'cache is gone',
    });
    expect(all[0]).toMatchObject({ source: 'governor', level: null, executed: true });
    expect(store.actions({ sinceMs: T0 + SEC }).map((x) => x.id)).toEqual([c, b]);
    expect(store.actions({ sinceMs: 0, untilMs: T0 + SEC }).map((x) => x.id)).toEqual([a]);
    expect(store.actions({ sinceMs: 0, limit: 1 }).map((x) => x.id)).toEqual([c]);
    expectHistoryError(() => store.actions({ sinceMs: 0, limit: 0 }), 'MEMTIDE_ERR_HISTORY_CONFIG', 'limit');
  });

  it('refuses an unknown source or level (CHECK), names the row it cannot decode', () => {
    const file = freshPath();
    const store = openStore(file);
    expectHistoryError(() => store.insertAction(actionAt(T0, 'x', { source: 'someone' as never })), 'MEMTIDE_ERR_HISTORY_WRITE', 'CHECK constraint');
    expectHistoryError(() => store.insertAction(actionAt(T0, 'x', { level: 'extreme' as never })), 'MEMTIDE_ERR_HISTORY_WRITE', 'CHECK constraint');
    store.close();
    const db = new Database(file);
    db.prepare(`INSERT INTO actions (id, at_ms, source, kind, level, reason, executed) VALUES (42, 7, 'coordinator', 'x', NULL, 'r', 1)`).run();
    db.prepare(`PRAGMA ignore_check_constraints = 1`).run();
    db.prepare(`INSERT INTO actions (id, at_ms, source, kind, level, reason, executed) VALUES (43, 8, 'martians', 'x', NULL, 'r', 1)`).run();
    db.close();
    const again = openStore(file);
    expect(again.actions({ sinceMs: 0, untilMs: 8 })).toMatchObject([{ id: 42, level: null, target: null, detail: null }]);
    expectHistoryError(() => again.actions({ sinceMs: 8 }), 'MEMTIDE_ERR_HISTORY_CORRUPT', 'action 43 at 8');
  });

  it('actions follow the aggregate retention, reported as actionsDeleted', () => {
    const store = openStore(freshPath(), { rawRetentionMs: HOUR, aggregateRetentionMs: DAY });
    store.insertAction(actionAt(T0, 'shrink-caches'));
    store.insertAction(actionAt(T0 + HOUR, 'shrink-caches'));
    expect(store.applyRetention(T0 + DAY + 30 * MIN)).toEqual({ rawDeleted: 0, aggregatesDeleted: 0, pressureDeleted: 0, actionsDeleted: 1 });
    expect(store.actions({ sinceMs: 0 }).map((x) => x.atMs)).toEqual([T0 + HOUR]);
  });

  it('action methods after close() fail with MEMTIDE_ERR_HISTORY_CLOSED', () => {
    const store = openStore(freshPath());
    store.close();
    expectHistoryError(() => store.insertAction(actionAt(T0, 'x')), 'MEMTIDE_ERR_HISTORY_CLOSED');
    expectHistoryError(() => store.updateAction(1, { undoneAtMs: 1 }), 'MEMTIDE_ERR_HISTORY_CLOSED');
    expectHistoryError(() => store.actions({ sinceMs: 0 }), 'MEMTIDE_ERR_HISTORY_CLOSED');
  });
});
