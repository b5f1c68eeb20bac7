/**
 * Persistent memory history on SQLite (better-sqlite3).
 *
 * Two resolutions are kept:
 * - **raw** rows, one per component (and one system row) per sample, for
 *   `rawRetentionMs` (default 24 h);
 * - **aggregate** rows, one per `aggregateBucketMs` bucket (default 1 min) with
 *   running min/max/sum/count, for `aggregateRetentionMs` (default 30 days).
 *
 * Aggregates are maintained in the same transaction as the raw insert (upsert
 * with running min/max/sum/count), so downsampled data always exists before
 * the raw rows it summarises can expire: retention never has to "downsample
 * then delete" and a crash between the two steps cannot lose a minute.
 *
 * Alert notifications (schema version 2) go to the `alerts` table, one row
 * per notification, with an `acknowledged_at` column set by
 * `acknowledgeAlert`; they follow the aggregate retention like pressure events.
 *
 * Actions (schema version 3) go to the `actions` table: every coordinator
 * and governor action, executed or only decided (observe-only), with memory
 * before and after; inserted when decided (`insertAction`), updated when
 * "memory after" is measured and when undone (`updateAction`). Same retention.
 *
 * Queries are generators over `Statement#iterate()`: a month of history is
 * never materialised in memory. Note that better-sqlite3 marks the connection
 * busy while an iterator is open, so writes on the same `HistoryStore` throw
 * until the iterator is finished (or `return()`ed, e.g. by `break`).
 */
import Database from 'better-sqlite3';
import type { ActionEntry, StoredAction } from '../actionTypes.js';
import {
  ALERT_SEVERITIES,
  PRESSURE_LEVELS,
  type Alert,
  type AlertKind,
  type AlertSeverity,
  type MemorySample,
  type PressureChange,
  type PressureLevel,
  type Recommendation,
} from '../model.js';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export interface HistoryStoreConfig {
  /** How long per-sample rows are kept. Default 24 h. */
  rawRetentionMs: number;
  /** Width of an aggregate bucket. Default 60 000 (1 min). Fixed per database file. */
  aggregateBucketMs: number;
  /** How long aggregate buckets (and pressure events) are kept. Default 30 days. */
  aggregateRetentionMs: number;
}

export const DEFAULT_HISTORY_STORE_CONFIG: Readonly<HistoryStoreConfig> = Object.freeze({
  rawRetentionMs: 24 * 60 * 60 * 1000,
  aggregateBucketMs: 60_000,
  aggregateRetentionMs: 30 * 24 * 60 * 60 * 1000,
});

export type HistoryErrorCode =
  /** The file cannot be opened or is not a SQLite database. */
  | 'MEMTIDE_ERR_HISTORY_OPEN'
  /** The file was written by a newer memtide (schema `user_version` unknown to this code). */
  | 'MEMTIDE_ERR_HISTORY_VERSION'
  /** Invalid config, or a bucket width that differs from the one the file was created with. */
  | 'MEMTIDE_ERR_HISTORY_CONFIG'
  /** A schema migration step failed (it was rolled back). */
  | 'MEMTIDE_ERR_HISTORY_MIGRATION'
  /** `append` / `applyRetention` failed (the transaction was rolled back). */
  | 'MEMTIDE_ERR_HISTORY_WRITE'
  /** The store was used after `close()`. */
  | 'MEMTIDE_ERR_HISTORY_CLOSED'
  /** A stored row does not decode (e.g. an unknown pressure level). */
  | 'MEMTIDE_ERR_HISTORY_CORRUPT';

export class HistoryError extends Error {
  override readonly name = 'HistoryError';
  constructor(
    readonly code: HistoryErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `raw`: one stored sample. `aggregate`: one bucket (averages, with min/max). */
export type Resolution = 'raw' | 'aggregate';

/** A half-open time range `[sinceMs, untilMs)`; `untilMs` omitted = no upper bound. */
export interface TimeRange {
  sinceMs: number;
  untilMs?: number;
}

export interface SeriesQuery extends TimeRange {
  /**
   * `auto` (default): aggregates for the part of the range whose raw rows may
   * already have been deleted by retention, raw rows after it.
   * `raw` / `aggregate`: only that resolution, over the whole range.
   */
  resolution?: 'auto' | Resolution;
}

export interface ComponentSeriesQuery extends SeriesQuery {
  /** Only this component; all components when omitted. */
  component?: string;
}

/**
 * One point of a component series. For aggregate points `timestampMs` is the
 * bucket start, `rssBytes`/`pssBytes` are the rounded averages over the
 * bucket and `processCount` is the maximum; for raw points min = max = rss.
 */
export interface ComponentPoint {
  timestampMs: number;
  component: string;
  rssBytes: number;
  rssMinBytes: number;
  rssMaxBytes: number;
  pssBytes: number | null;
  processCount: number;
  sampleCount: number;
  resolution: Resolution;
}

/**
 * One point of the system series. For aggregate points byte values are
 * rounded averages, except `swapTotalBytes` (maximum) and the min/max fields.
 */
export interface SystemPoint {
  timestampMs: number;
  totalBytes: number;
  availableBytes: number;
  availableMinBytes: number;
  availableMaxBytes: number;
  swapTotalBytes: number;
  swapUsedBytes: number;
  psiSomeAvg10: number | null;
  psiFullAvg10: number | null;
  sampleCount: number;
  resolution: Resolution;
}

export interface RetentionResult {
  /** Raw component + system rows deleted. */
  rawDeleted: number;
  /** Component + system aggregate buckets deleted. */
  aggregatesDeleted: number;
  /** Pressure events deleted (they follow the aggregate retention: few rows, high value). */
  pressureDeleted: number;
  /** Alert notifications deleted (same retention as pressure events); omitted when none were. */
  alertsDeleted?: number;
  /** Actions deleted (same retention); omitted when none were. */
  actionsDeleted?: number;
}

/** A stored alert notification. */
export interface StoredAlert extends Alert {
  /** When it was acknowledged (`acknowledgeAlert`), null if not. */
  acknowledgedAtMs: number | null;
}

export interface AlertQuery extends TimeRange {
  /** Only firing or only resolved notifications; both when omitted. */
  status?: Alert['status'];
}

export type { ActionEntry, ActionSource, StoredAction } from '../actionTypes.js';

/** Fields `updateAction` may set (after the insert). */
export type ActionUpdate = Partial<Pick<ActionEntry, 'componentBytesAfter' | 'availableBytesAfter' | 'measuredAtMs' | 'undoneAtMs' | 'error'>>;

export interface ActionQuery extends TimeRange {
  /** At most this many, newest first (default 1000, at most 10 000). */
  limit?: number;
}

export const MAX_ACTIONS_QUERY = 10_000;

export interface CheckpointResult {
  /** True when a reader prevented a complete checkpoint (the WAL was not truncated). */
  busy: boolean;
  walFrames: number;
  checkpointedFrames: number;
}

/** Anything with a `write(string)`: a `fs.WriteStream`, `process.stdout`, a test collector. */
export interface TextSink {
  write(chunk: string): unknown;
}

/** First line of the trace CSV written by `exportCsv` (and read by `analyze`). */
export const TRACE_CSV_HEADER = 'timestamp_ms,component,rss_bytes';
/** Pseudo-components under which `exportCsv` writes system memory. */
export const SYSTEM_TOTAL_COMPONENT = 'system.total';
export const SYSTEM_AVAILABLE_COMPONENT = 'system.available';

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

/**
 * Ordered schema migrations; step `i` brings the file to `user_version = i + 1`.
 * This array is history: never edit a step that has shipped, append a new one.
 *
 * Component names are stored as TEXT rather than through a dictionary table:
 * there are a handful of short names (`ollama`, `whisper`, ...), so the extra
 * bytes per row are small next to the four integers, while a dictionary would
 * add a lookup/insert to every write and a join to every read. Raw rows live
 * for a day only, and bucket rows are 60x fewer.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE component_samples (
    timestamp_ms  INTEGER NOT NULL,
    component     TEXT    NOT NULL,
    rss_bytes     INTEGER NOT NULL,
    pss_bytes     INTEGER,
    process_count INTEGER NOT NULL
  );
  CREATE INDEX component_samples_by_time ON component_samples (timestamp_ms, component);
  CREATE INDEX component_samples_by_component ON component_samples (component, timestamp_ms);

  CREATE TABLE system_samples (
    timestamp_ms     INTEGER NOT NULL,
    total_bytes      INTEGER NOT NULL,
    available_bytes  INTEGER NOT NULL,
    swap_total_bytes INTEGER NOT NULL,
    swap_used_bytes  INTEGER NOT NULL,
    psi_some_avg10   REAL,
    psi_full_avg10   REAL
  );
  CREATE INDEX system_samples_by_time ON system_samples (timestamp_ms);

  CREATE TABLE pressure_events (
    at_ms    INTEGER NOT NULL,
    level    TEXT    NOT NULL CHECK (level IN ('low', 'medium', 'high', 'critical')),
    previous TEXT             CHECK (previous IN ('low', 'medium', 'high', 'critical')),
    reasons  TEXT    NOT NULL -- JSON array of strings
  );
  CREATE INDEX pressure_events_by_time ON pressure_events (at_ms);

  CREATE TABLE component_buckets (
    bucket_ms         INTEGER NOT NULL,
    component         TEXT    NOT NULL,
    rss_min           INTEGER NOT NULL,
    rss_max           INTEGER NOT NULL,
    rss_sum           INTEGER NOT NULL,
    pss_sum           INTEGER NOT NULL,
    pss_count         INTEGER NOT NULL,
    process_count_max INTEGER NOT NULL,
    sample_count      INTEGER NOT NULL,
    PRIMARY KEY (bucket_ms, component)
  ) WITHOUT ROWID;
  CREATE INDEX component_buckets_by_component ON component_buckets (component, bucket_ms);

  CREATE TABLE system_buckets (
    bucket_ms       INTEGER PRIMARY KEY,
    total_min       INTEGER NOT NULL,
    total_max       INTEGER NOT NULL,
    total_sum       INTEGER NOT NULL,
    available_min   INTEGER NOT NULL,
    available_max   INTEGER NOT NULL,
    available_sum   INTEGER NOT NULL,
    swap_total_max  INTEGER NOT NULL,
    swap_used_sum   INTEGER NOT NULL,
    psi_some_sum    REAL    NOT NULL,
    psi_full_sum    REAL    NOT NULL,
    psi_count       INTEGER NOT NULL,
    sample_count    INTEGER NOT NULL
  );
  `,
  // 2: alert notifications. Kind and severity are validated when read rather than
  // by CHECK constraints, so a new kind does not need a table rebuild.
  `
  CREATE TABLE alerts (
    at_ms           INTEGER NOT NULL,
    key             TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    component       TEXT,
    since_ms        INTEGER NOT NULL,
    repeat          INTEGER NOT NULL,
    title           TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    recommendations TEXT    NOT NULL, -- JSON array of { action, command?, expectedSavingBytes? }
    acknowledged_at INTEGER
  );
  CREATE INDEX alerts_by_time ON alerts (at_ms);
  CREATE INDEX alerts_by_key ON alerts (key, at_ms);
  `,
  // 3: actions of the coordinator and the governor. Kinds are open text (new actions need no rebuild);
  // the source is checked, like the alert status, because readers branch on it.
  `
  CREATE TABLE actions (
    id                     INTEGER PRIMARY KEY,
    at_ms                  INTEGER NOT NULL,
    source                 TEXT    NOT NULL CHECK (source IN ('coordinator', 'governor')),
    kind                   TEXT    NOT NULL,
    level                  TEXT             CHECK (level IN ('low', 'medium', 'high', 'critical')),
    target                 TEXT,
    detail                 TEXT,
    reason                 TEXT    NOT NULL,
    executed               INTEGER NOT NULL CHECK (executed IN (0, 1)),
    error                  TEXT,
    component_bytes_before INTEGER,
    available_bytes_before INTEGER,
    component_bytes_after  INTEGER,
    available_bytes_after  INTEGER,
    measured_at_ms         INTEGER,
    undone_at_ms           INTEGER
  );
  CREATE INDEX actions_by_time ON actions (at_ms);
  `,
];

/** The schema version this code writes; files with a higher `user_version` are refused. */
export const HISTORY_SCHEMA_VERSION = MIGRATIONS.length;

/** `meta` keys. */
const META_BUCKET_MS = 'aggregate_bucket_ms';
/** Retention cut of the latest `applyRetention`: raw rows before it may be gone. */
const META_RAW_HORIZON_MS = 'raw_horizon_ms';

const SQL = {
  getMeta: `SELECT value FROM meta WHERE key = ?`,
  setMeta: `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,

  insertComponent: `INSERT INTO component_samples (timestamp_ms, component, rss_bytes, pss_bytes, process_count)
    VALUES (@timestampMs, @component, @rssBytes, @pssBytes, @processCount)`,
  upsertComponentBucket: `INSERT INTO component_buckets
      (bucket_ms, component, rss_min, rss_max, rss_sum, pss_sum, pss_count, process_count_max, sample_count)
    VALUES (@bucketMs, @component, @rssBytes, @rssBytes, @rssBytes, coalesce(@pssBytes, 0), @pssBytes IS NOT NULL, @processCount, 1)
    ON CONFLICT (bucket_ms, component) DO UPDATE SET
      rss_min = min(rss_min, excluded.rss_min),
      rss_max = max(rss_max, excluded.rss_max),
      rss_sum = rss_sum + excluded.rss_sum,
      pss_sum = pss_sum + excluded.pss_sum,
      pss_count = pss_count + excluded.pss_count,
      process_count_max = max(process_count_max, excluded.process_count_max),
      sample_count = sample_count + 1`,
  insertSystem: `INSERT INTO system_samples
      (timestamp_ms, total_bytes, available_bytes, swap_total_bytes, swap_used_bytes, psi_some_avg10, psi_full_avg10)
    VALUES (@timestampMs, @totalBytes, @availableBytes, @swapTotalBytes, @swapUsedBytes, @psiSome, @psiFull)`,
  upsertSystemBucket: `INSERT INTO system_buckets
      (bucket_ms, total_min, total_max, total_sum, available_min, available_max, available_sum,
       swap_total_max, swap_used_sum, psi_some_sum, psi_full_sum, psi_count, sample_count)
    VALUES (@bucketMs, @totalBytes, @totalBytes, @totalBytes, @availableBytes, @availableBytes, @availableBytes,
       @swapTotalBytes, @swapUsedBytes, coalesce(@psiSome, 0), coalesce(@psiFull, 0), @psiSome IS NOT NULL, 1)
    ON CONFLICT (bucket_ms) DO UPDATE SET
      total_min = min(total_min, excluded.total_min),
      total_max = max(total_max, excluded.total_max),
      total_sum = total_sum + excluded.total_sum,
      available_min = min(available_min, excluded.available_min),
      available_max = max(available_max, excluded.available_max),
      available_sum = available_sum + excluded.available_sum,
      swap_total_max = max(swap_total_max, excluded.swap_total_max),
      swap_used_sum = swap_used_sum + excluded.swap_used_sum,
      psi_some_sum = psi_some_sum + excluded.psi_some_sum,
      psi_full_sum = psi_full_sum + excluded.psi_full_sum,
      psi_count = psi_count + excluded.psi_count,
      sample_count = sample_count + 1`,
  insertPressure: `INSERT INTO pressure_events (at_ms, level, previous, reasons) VALUES (?, ?, ?, ?)`,
  insertAlert: `INSERT INTO alerts
      (at_ms, key, kind, severity, status, component, since_ms, repeat, title, message, recommendations)
    VALUES (@atMs, @key, @kind, @severity, @status, @component, @sinceMs, @repeat, @title, @message, @recommendations)`,
  acknowledgeAlert: `UPDATE alerts SET acknowledged_at = ? WHERE key = ? AND acknowledged_at IS NULL AND at_ms <= ?`,
  insertAction: `INSERT INTO actions
      (at_ms, source, kind, level, target, detail, reason, executed, error,
       component_bytes_before, available_bytes_before, component_bytes_after, available_bytes_after, measured_at_ms, undone_at_ms)
    VALUES (@atMs, @source, @kind, @level, @target, @detail, @reason, @executed, @error,
       @componentBytesBefore, @availableBytesBefore, @componentBytesAfter, @availableBytesAfter, @measuredAtMs, @undoneAtMs)`,
  // Only the fields given change (a NULL parameter keeps the stored value): the sink sends each update as it comes.
  updateAction: `UPDATE actions SET
      component_bytes_after = coalesce(@componentBytesAfter, component_bytes_after),
      available_bytes_after = coalesce(@availableBytesAfter, available_bytes_after),
      measured_at_ms = coalesce(@measuredAtMs, measured_at_ms),
      undone_at_ms = coalesce(@undoneAtMs, undone_at_ms),
      error = coalesce(@error, error)
    WHERE id = @id`,

  deleteComponentsBefore: `DELETE FROM component_samples WHERE timestamp_ms < ?`,
  deleteSystemBefore: `DELETE FROM system_samples WHERE timestamp_ms < ?`,
  deleteComponentBucketsBefore: `DELETE FROM component_buckets WHERE bucket_ms < ?`,
  deleteSystemBucketsBefore: `DELETE FROM system_buckets WHERE bucket_ms < ?`,
  deletePressureBefore: `DELETE FROM pressure_events WHERE at_ms < ?`,
  deleteAlertsBefore: `DELETE FROM alerts WHERE at_ms < ?`,
  deleteActionsBefore: `DELETE FROM actions WHERE at_ms < ?`,

  componentRaw: `SELECT timestamp_ms, component, rss_bytes, pss_bytes, process_count FROM component_samples
    WHERE timestamp_ms >= ? AND timestamp_ms < ? ORDER BY timestamp_ms, component`,
  componentRawOf: `SELECT timestamp_ms, component, rss_bytes, pss_bytes, process_count FROM component_samples
    WHERE component = ? AND timestamp_ms >= ? AND timestamp_ms < ? ORDER BY timestamp_ms`,
  componentBuckets: `SELECT bucket_ms, component, rss_min, rss_max, rss_sum, pss_sum, pss_count, process_count_max, sample_count
    FROM component_buckets WHERE bucket_ms >= ? AND bucket_ms < ? ORDER BY bucket_ms, component`,
  componentBucketsOf: `SELECT bucket_ms, component, rss_min, rss_max, rss_sum, pss_sum, pss_count, process_count_max, sample_count
    FROM component_buckets WHERE component = ? AND bucket_ms >= ? AND bucket_ms < ? ORDER BY bucket_ms`,
  systemRaw: `SELECT timestamp_ms, total_bytes, available_bytes, swap_total_bytes, swap_used_bytes, psi_some_avg10, psi_full_avg10
    FROM system_samples WHERE timestamp_ms >= ? AND timestamp_ms < ? ORDER BY timestamp_ms`,
  systemBuckets: `SELECT bucket_ms, total_sum, available_min, available_max, available_sum, swap_total_max, swap_used_sum,
      psi_some_sum, psi_full_sum, psi_count, sample_count
    FROM system_buckets WHERE bucket_ms >= ? AND bucket_ms < ? ORDER BY bucket_ms`,
  pressure: `SELECT at_ms, level, previous, reasons FROM pressure_events
    WHERE at_ms >= ? AND at_ms < ? ORDER BY at_ms`,
  // rowid breaks ties: notifications of one instant come back in the order they were written.
  alerts: `SELECT at_ms, key, kind, severity, status, component, since_ms, repeat, title, message, recommendations, acknowledged_at
    FROM alerts WHERE at_ms >= ? AND at_ms < ? ORDER BY at_ms, rowid`,
  alertsWithStatus: `SELECT at_ms, key, kind, severity, status, component, since_ms, repeat, title, message, recommendations, acknowledged_at
    FROM alerts WHERE at_ms >= ? AND at_ms < ? AND status = ? ORDER BY at_ms, rowid`,
  // Newest first; id breaks ties (actions of one instant: the later decision first).
  actions: `SELECT id, at_ms, source, kind, level, target, detail, reason, executed, error,
      component_bytes_before, available_bytes_before, component_bytes_after, available_bytes_after, measured_at_ms, undone_at_ms
    FROM actions WHERE at_ms >= ? AND at_ms < ? ORDER BY at_ms DESC, id DESC LIMIT ?`,
} as const;

// Row shapes, as selected above.
interface ComponentRow {
  timestampMs: number;
  component: string;
  rssBytes: number;
  pssBytes: number | null;
  processCount: number;
}
interface ComponentBucketParams extends ComponentRow {
  bucketMs: number;
}
interface SystemParams {
  timestampMs: number;
  bucketMs: number;
  totalBytes: number;
  availableBytes: number;
  swapTotalBytes: number;
  swapUsedBytes: number;
  psiSome: number | null;
  psiFull: number | null;
}
interface ComponentRawRow {
  timestamp_ms: number;
  component: string;
  rss_bytes: number;
  pss_bytes: number | null;
  process_count: number;
}
interface ComponentBucketRow {
  bucket_ms: number;
  component: string;
  rss_min: number;
  rss_max: number;
  rss_sum: number;
  pss_sum: number;
  pss_count: number;
  process_count_max: number;
  sample_count: number;
}
interface SystemRawRow {
  timestamp_ms: number;
  total_bytes: number;
  available_bytes: number;
  swap_total_bytes: number;
  swap_used_bytes: number;
  psi_some_avg10: number | null;
  psi_full_avg10: number | null;
}
interface SystemBucketRow {
  bucket_ms: number;
  total_sum: number;
  available_min: number;
  available_max: number;
  available_sum: number;
  swap_total_max: number;
  swap_used_sum: number;
  psi_some_sum: number;
  psi_full_sum: number;
  psi_count: number;
  sample_count: number;
}
interface PressureRow {
  at_ms: number;
  level: string;
  previous: string | null;
  reasons: string;
}

interface AlertParams {
  atMs: number;
  key: string;
  kind: string;
  severity: string;
  status: string;
  component: string | null;
  sinceMs: number;
  repeat: number;
  title: string;
  message: string;
  recommendations: string;
}
interface AlertRow {
  at_ms: number;
  key: string;
  kind: string;
  severity: string;
  status: string;
  component: string | null;
  since_ms: number;
  repeat: number;
  title: string;
  message: string;
  recommendations: string;
  acknowledged_at: number | null;
}

/** `executed` as SQLite stores a boolean. */
type ActionParams = Omit<ActionEntry, 'executed'> & { executed: number };
interface ActionUpdateParams {
  id: number;
  componentBytesAfter: number | null;
  availableBytesAfter: number | null;
  measuredAtMs: number | null;
  undoneAtMs: number | null;
  error: string | null;
}
interface ActionRow {
  id: number;
  at_ms: number;
  source: string;
  kind: string;
  level: string | null;
  target: string | null;
  detail: string | null;
  reason: string;
  executed: number;
  error: string | null;
  component_bytes_before: number | null;
  available_bytes_before: number | null;
  component_bytes_after: number | null;
  available_bytes_after: number | null;
  measured_at_ms: number | null;
  undone_at_ms: number | null;
}

type Db = Database.Database;
type Stmt<P extends unknown[], R = unknown> = Database.Statement<P, R>;

/** Sentinels for "no bound" in range queries; SQLite integers are 64-bit, these are safe JS integers. */
const MIN_MS = Number.MIN_SAFE_INTEGER;
const MAX_MS = Number.MAX_SAFE_INTEGER;

/** Write `exportCsv` output in chunks of about this many characters (fewer `write` calls). */
const CSV_CHUNK_CHARS = 64 * 1024;

// ---------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------

function validateConfig(config: HistoryStoreConfig): void {
  const positive = (name: keyof HistoryStoreConfig): void => {
    const v = config[name];
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new HistoryError('MEMTIDE_ERR_HISTORY_CONFIG', `history ${name} must be a positive integer, got ${v}`);
    }
  };
  positive('rawRetentionMs');
  positive('aggregateBucketMs');
  positive('aggregateRetentionMs');
  if (config.aggregateRetentionMs < config.rawRetentionMs) {
    // Otherwise aggregates would expire before the raw rows they summarise,
    // and the 'auto' series would have a hole.
    throw new HistoryError(
      'MEMTIDE_ERR_HISTORY_CONFIG',
      `history aggregateRetentionMs (${config.aggregateRetentionMs}) must be >= rawRetentionMs (${config.rawRetentionMs})`,
    );
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Opens the file and reads `user_version`, which forces SQLite to read the
 * header: a non-database file fails here ("file is not a database"), not on
 * the first write.
 */
/** SQLite page cache per connection, in KiB (SQLite's own default; see `connect`). */
export const PAGE_CACHE_KIB = 2000;

function connect(path: string): { db: Db; version: number } {
  let db: Db | undefined;
  try {
    db = new Database(path, { timeout: 5_000 /* busy_timeout: wait for another writer instead of failing */ });
    const version = db.pragma('user_version', { simple: true });
    if (typeof version !== 'number') throw new Error(`unexpected user_version ${String(version)}`);
    // better-sqlite3 builds SQLite with a 16 MB page cache per connection, which fills as the file grows
    // (the runner soak's slow RSS warm-up: ~33 MB over two connections). Writes append at the right edge
    // of the indexes and queries stream in index order, so SQLite's own 2 MB default costs little: the file
    // stays in the OS page cache, which the kernel can reclaim under pressure (our own heap it cannot).
    db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    return { db, version };
  } catch (err) {
    db?.close();
    throw new HistoryError('MEMTIDE_ERR_HISTORY_OPEN', `cannot open history database ${path}: ${messageOf(err)}`, {
      cause: err,
    });
  }
}

/**
 * WAL + synchronous=NORMAL: a committed transaction is in the WAL file before
 * `COMMIT` returns, so it survives a crash of *this process*; only an OS crash
 * or power loss may lose the last few commits (the WAL is not fsynced on every
 * commit), and the database is never corrupted either way. That trade is right
 * for monitoring history, and it keeps the 5 s flush cheap (no fsync per batch).
 * WAL also lets the CLI/dashboard read while the daemon writes.
 */
function configureJournal(db: Db, path: string): void {
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
  } catch (err) {
    throw new HistoryError('MEMTIDE_ERR_HISTORY_OPEN', `cannot enable WAL on history database ${path}: ${messageOf(err)}`, {
      cause: err,
    });
  }
}

/** Applies the missing migration steps, each in its own transaction together with its `user_version` bump. */
function migrate(db: Db, path: string, fromVersion: number): void {
  for (let version = fromVersion; version < MIGRATIONS.length; version++) {
    const step = MIGRATIONS[version] ?? '';
    try {
      db.transaction(() => {
        db.exec(step);
        db.pragma(`user_version = ${version + 1}`);
      }).immediate();
    } catch (err) {
      throw new HistoryError(
        'MEMTIDE_ERR_HISTORY_MIGRATION',
        `history database ${path}: migration to version ${version + 1} failed: ${messageOf(err)}`,
        { cause: err },
      );
    }
  }
}

/**
 * Records the bucket width on first open and refuses a different one later:
 * mixing 1-minute and 5-minute buckets in one table would silently corrupt
 * the averages (a sample would be summed into a bucket keyed by another grid).
 */
function checkBucketWidth(db: Db, path: string, bucketMs: number): void {
  const stored = db.prepare<[string], { value: number }>(SQL.getMeta).get(META_BUCKET_MS);
  if (stored === undefined) {
    db.prepare<[string, number]>(SQL.setMeta).run(META_BUCKET_MS, bucketMs);
  } else if (stored.value !== bucketMs) {
    throw new HistoryError(
      'MEMTIDE_ERR_HISTORY_CONFIG',
      `history database ${path} uses ${stored.value} ms buckets, config asks for ${bucketMs} ms`,
    );
  }
}

// ---------------------------------------------------------------------------
// Small pure helpers
// ---------------------------------------------------------------------------

function floorTo(ms: number, step: number): number {
  return Math.floor(ms / step) * step;
}

function ceilTo(ms: number, step: number): number {
  return Math.ceil(ms / step) * step;
}

function average(sum: number, count: number): number {
  return Math.round(sum / count);
}

function isPressureLevel(value: unknown): value is PressureLevel {
  return typeof value === 'string' && (PRESSURE_LEVELS as readonly string[]).includes(value);
}

function componentRowsOf(sample: MemorySample): ComponentRow[] {
  return Object.entries(sample.components).map(([component, usage]) => ({
    timestampMs: sample.timestampMs,
    component,
    rssBytes: usage.rssBytes,
    pssBytes: usage.pssBytes,
    processCount: usage.processCount,
  }));
}

function systemParamsOf(sample: MemorySample, bucketMs: number): SystemParams {
  const s = sample.system;
  return {
    timestampMs: sample.timestampMs,
    bucketMs,
    totalBytes: s.totalBytes,
    availableBytes: s.availableBytes,
    swapTotalBytes: s.swapTotalBytes,
    swapUsedBytes: s.swapUsedBytes,
    psiSome: s.psi?.someAvg10 ?? null,
    psiFull: s.psi?.fullAvg10 ?? null,
  };
}

function componentPointOfRaw(r: ComponentRawRow): ComponentPoint {
  return {
    timestampMs: r.timestamp_ms,
    component: r.component,
    rssBytes: r.rss_bytes,
    rssMinBytes: r.rss_bytes,
    rssMaxBytes: r.rss_bytes,
    pssBytes: r.pss_bytes,
    processCount: r.process_count,
    sampleCount: 1,
    resolution: 'raw',
  };
}

function componentPointOfBucket(r: ComponentBucketRow): ComponentPoint {
  return {
    timestampMs: r.bucket_ms,
    component: r.component,
    rssBytes: average(r.rss_sum, r.sample_count),
    rssMinBytes: r.rss_min,
    rssMaxBytes: r.rss_max,
    pssBytes: r.pss_count > 0 ? average(r.pss_sum, r.pss_count) : null,
    processCount: r.process_count_max,
    sampleCount: r.sample_count,
    resolution: 'aggregate',
  };
}

function systemPointOfRaw(r: SystemRawRow): SystemPoint {
  return {
    timestampMs: r.timestamp_ms,
    totalBytes: r.total_bytes,
    availableBytes: r.available_bytes,
    availableMinBytes: r.available_bytes,
    availableMaxBytes: r.available_bytes,
    swapTotalBytes: r.swap_total_bytes,
    swapUsedBytes: r.swap_used_bytes,
    psiSomeAvg10: r.psi_some_avg10,
    psiFullAvg10: r.psi_full_avg10,
    sampleCount: 1,
    resolution: 'raw',
  };
}

function systemPointOfBucket(r: SystemBucketRow): SystemPoint {
  const hasPsi = r.psi_count > 0;
  return {
    timestampMs: r.bucket_ms,
    totalBytes: average(r.total_sum, r.sample_count),
    availableBytes: average(r.available_sum, r.sample_count),
    availableMinBytes: r.available_min,
    availableMaxBytes: r.available_max,
    swapTotalBytes: r.swap_total_max,
    swapUsedBytes: average(r.swap_used_sum, r.sample_count),
    psiSomeAvg10: hasPsi ? r.psi_some_sum / r.psi_count : null,
    psiFullAvg10: hasPsi ? r.psi_full_sum / r.psi_count : null,
    sampleCount: r.sample_count,
    resolution: 'aggregate',
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function pressureChangeOf(r: PressureRow): PressureChange {
  const reasons = parseJson(r.reasons);
  const previous = r.previous;
  if (
    !isPressureLevel(r.level) ||
    (previous !== null && !isPressureLevel(previous)) ||
    !Array.isArray(reasons) ||
    !reasons.every((x): x is string => typeof x === 'string')
  ) {
    throw new HistoryError('MEMTIDE_ERR_HISTORY_CORRUPT', `undecodable pressure event at ${r.at_ms}`);
  }
  return { atMs: r.at_ms, level: r.level, previous, reasons };
}

const ALERT_KINDS: readonly AlertKind[] = ['pressure', 'leak', 'exhaustion', 'budget', 'engine'];

function isRecommendation(value: unknown): value is Recommendation {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return (
    typeof r.action === 'string' &&
    (r.command === undefined || typeof r.command === 'string') &&
    (r.expectedSavingBytes === undefined || typeof r.expectedSavingBytes === 'number')
  );
}

function alertParamsOf(alert: Alert): AlertParams {
  return {
    atMs: alert.atMs,
    key: alert.key,
    kind: alert.kind,
    severity: alert.severity,
    status: alert.status,
    component: alert.component,
    sinceMs: alert.sinceMs,
    repeat: alert.repeat,
    title: alert.title,
    message: alert.message,
    recommendations: JSON.stringify(alert.recommendations),
  };
}

function storedAlertOf(r: AlertRow): StoredAlert {
  const recommendations = parseJson(r.recommendations);
  if (
    !(ALERT_KINDS as readonly string[]).includes(r.kind) ||
    !(ALERT_SEVERITIES as readonly string[]).includes(r.severity) ||
    (r.status !== 'firing' && r.status !== 'resolved') ||
    !Array.isArray(recommendations) ||
    !recommendations.every(isRecommendation)
  ) {
    throw new HistoryError('MEMTIDE_ERR_HISTORY_CORRUPT', `undecodable alert ${r.key} at ${r.at_ms}`);
  }
  return {
    key: r.key,
    kind: r.kind as AlertKind,
    severity: r.severity as AlertSeverity,
    status: r.status,
    component: r.component,
    atMs: r.at_ms,
    sinceMs: r.since_ms,
    repeat: r.repeat,
    title: r.title,
    message: r.message,
    recommendations,
    acknowledgedAtMs: r.acknowledged_at,
  };
}

function actionParamsOf(a: ActionEntry): ActionParams {
  return {
    atMs: a.atMs,
    source: a.source,
    kind: a.kind,
    level: a.level,
    target: a.target,
    detail: a.detail,
    reason: a.reason,
    executed: a.executed ? 1 : 0,
    error: a.error,
    componentBytesBefore: a.componentBytesBefore,
    availableBytesBefore: a.availableBytesBefore,
    componentBytesAfter: a.componentBytesAfter,
    availableBytesAfter: a.availableBytesAfter,
    measuredAtMs: a.measuredAtMs,
    undoneAtMs: a.undoneAtMs,
  };
}

function storedActionOf(r: ActionRow): StoredAction {
  if ((r.source !== 'coordinator' && r.source !== 'governor') || (r.level !== null && !isPressureLevel(r.level))) {
    throw new HistoryError('MEMTIDE_ERR_HISTORY_CORRUPT', `undecodable action ${r.id} at ${r.at_ms}`);
  }
  return {
    id: r.id,
    atMs: r.at_ms,
    source: r.source,
    kind: r.kind,
    level: r.level,
    target: r.target,
    detail: r.detail,
    reason: r.reason,
    executed: r.executed === 1,
    error: r.error,
    componentBytesBefore: r.component_bytes_before,
    availableBytesBefore: r.available_bytes_before,
    componentBytesAfter: r.component_bytes_after,
    availableBytesAfter: r.available_bytes_after,
    measuredAtMs: r.measured_at_ms,
    undoneAtMs: r.undone_at_ms,
  };
}

/** Time spans (half-open) served by each resolution for one query. */
interface Plan {
  aggregate: { from: number; to: number } | null;
  raw: { from: number; to: number } | null;
}

function nonEmpty(from: number, to: number): { from: number; to: number } | null {
  return from < to ? { from, to } : null;
}

/**
 * Splits `[since, until)` at `boundary`: buckets starting before it come from
 * aggregates, samples at or after it from raw rows. `boundary` is bucket
 * aligned, so no bucket is half-served from both (which would double count).
 */
function planRange(query: SeriesQuery, boundary: number): Plan {
  const since = query.sinceMs;
  const until = query.untilMs ?? MAX_MS;
  switch (query.resolution ?? 'auto') {
    case 'raw':
      return { aggregate: null, raw: nonEmpty(since, until) };
    case 'aggregate':
      return { aggregate: nonEmpty(since, until), raw: null };
    case 'auto':
      return {
        aggregate: nonEmpty(since, Math.min(until, boundary)),
        raw: nonEmpty(Math.max(since, boundary), until),
      };
  }
}

/** A trace CSV row. */
interface TraceRow {
  timestampMs: number;
  component: string;
  bytes: number;
}

/**
 * Orders strings like SQLite's default BINARY collation (UTF-8 bytes, i.e.
 * code points). JS `<` compares UTF-16 code units, which disagrees for
 * characters above U+FFFF; the merge below must agree with `ORDER BY component`.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i) ?? 0;
    const y = b.codePointAt(i) ?? 0;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

function compareTraceRows(a: TraceRow, b: TraceRow): number {
  return a.timestampMs - b.timestampMs || compareCodePoints(a.component, b.component);
}

/** Merges two sorted streams into one sorted stream, holding one element of each. */
function* mergeSorted<T>(left: Iterator<T>, right: Iterator<T>, compare: (a: T, b: T) => number): Generator<T> {
  let l = left.next();
  let r = right.next();
  try {
    for (;;) {
      if (l.done) {
        if (r.done) return;
        yield r.value;
        r = right.next();
      } else if (r.done || compare(l.value, r.value) <= 0) {
        yield l.value;
        l = left.next();
      } else {
        yield r.value;
        r = right.next();
      }
    }
  } finally {
    // Release the SQLite cursors if the consumer stops early (or a write throws).
    left.return?.();
    right.return?.();
  }
}

function* componentTraceRows(points: Iterable<ComponentPoint>): Generator<TraceRow> {
  for (const p of points) yield { timestampMs: p.timestampMs, component: p.component, bytes: p.rssBytes };
}

/** Two rows per system point, already in component order (`system.available` < `system.total`). */
function* systemTraceRows(points: Iterable<SystemPoint>): Generator<TraceRow> {
  for (const p of points) {
    yield { timestampMs: p.timestampMs, component: SYSTEM_AVAILABLE_COMPONENT, bytes: p.availableBytes };
    yield { timestampMs: p.timestampMs, component: SYSTEM_TOTAL_COMPONENT, bytes: p.totalBytes };
  }
}

/** RFC 4180 quoting, only when needed (component names are normally plain identifiers). */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

function traceLine(row: TraceRow): string {
  return `${row.timestampMs},${csvField(row.component)},${row.bytes}\n`;
}

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

/** Every statement the store runs, prepared once when the store is opened. */
function prepareStatements(db: Db) {
  return {
    getMeta: db.prepare<[string], { value: number }>(SQL.getMeta),
    setMeta: db.prepare<[string, number]>(SQL.setMeta),
    insertComponent: db.prepare<ComponentRow>(SQL.insertComponent),
    upsertComponentBucket: db.prepare<ComponentBucketParams>(SQL.upsertComponentBucket),
    insertSystem: db.prepare<SystemParams>(SQL.insertSystem),
    upsertSystemBucket: db.prepare<SystemParams>(SQL.upsertSystemBucket),
    insertPressure: db.prepare<[number, string, string | null, string]>(SQL.insertPressure),
    insertAlert: db.prepare<AlertParams>(SQL.insertAlert),
    acknowledgeAlert: db.prepare<[number, string, number]>(SQL.acknowledgeAlert),
    insertAction: db.prepare<ActionParams>(SQL.insertAction),
    updateAction: db.prepare<ActionUpdateParams>(SQL.updateAction),
    deleteActionsBefore: db.prepare<[number]>(SQL.deleteActionsBefore),
    actions: db.prepare<[number, number, number], ActionRow>(SQL.actions),
    deleteComponentsBefore: db.prepare<[number]>(SQL.deleteComponentsBefore),
    deleteSystemBefore: db.prepare<[number]>(SQL.deleteSystemBefore),
    deleteComponentBucketsBefore: db.prepare<[number]>(SQL.deleteComponentBucketsBefore),
    deleteSystemBucketsBefore: db.prepare<[number]>(SQL.deleteSystemBucketsBefore),
    deletePressureBefore: db.prepare<[number]>(SQL.deletePressureBefore),
    deleteAlertsBefore: db.prepare<[number]>(SQL.deleteAlertsBefore),
    componentRaw: db.prepare<[number, number], ComponentRawRow>(SQL.componentRaw),
    componentRawOf: db.prepare<[string, number, number], ComponentRawRow>(SQL.componentRawOf),
    componentBuckets: db.prepare<[number, number], ComponentBucketRow>(SQL.componentBuckets),
    componentBucketsOf: db.prepare<[string, number, number], ComponentBucketRow>(SQL.componentBucketsOf),
    systemRaw: db.prepare<[number, number], SystemRawRow>(SQL.systemRaw),
    systemBuckets: db.prepare<[number, number], SystemBucketRow>(SQL.systemBuckets),
    pressure: db.prepare<[number, number], PressureRow>(SQL.pressure),
    alerts: db.prepare<[number, number], AlertRow>(SQL.alerts),
    alertsWithStatus: db.prepare<[number, number, string], AlertRow>(SQL.alertsWithStatus),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

export class HistoryStore {
  private readonly stmts: Statements;
  private readonly appendTx: (samples: readonly MemorySample[], pressure: readonly PressureChange[]) => void;
  private readonly retentionTx: (nowMs: number) => RetentionResult;
  private readonly alertsTx: (alerts: readonly Alert[]) => void;

  private constructor(
    private readonly db: Db,
    /** The file this store was opened on (for error messages). */
    readonly path: string,
    readonly config: Readonly<HistoryStoreConfig>,
  ) {
    this.stmts = prepareStatements(db);
    this.appendTx = db.transaction((samples: readonly MemorySample[], pressure: readonly PressureChange[]) => {
      for (const sample of samples) this.writeSample(sample);
      for (const change of pressure) this.writePressure(change);
    });
    this.retentionTx = db.transaction((nowMs: number) => this.deleteExpired(nowMs));
    this.alertsTx = db.transaction((alerts: readonly Alert[]) => {
      for (const alert of alerts) this.stmts.insertAlert.run(alertParamsOf(alert));
    });
  }

  /**
   * Opens (creating if needed) the history database at `path` (`':memory:'`
   * for tests), migrates its schema and prepares every statement.
   *
   * @throws HistoryError `MEMTIDE_ERR_HISTORY_OPEN` (unreadable / not SQLite),
   *   `MEMTIDE_ERR_HISTORY_VERSION` (written by a newer memtide),
   *   `MEMTIDE_ERR_HISTORY_CONFIG`, `MEMTIDE_ERR_HISTORY_MIGRATION`.
   */
  static open(path: string, config: Partial<HistoryStoreConfig> = {}): HistoryStore {
    const full: HistoryStoreConfig = { ...DEFAULT_HISTORY_STORE_CONFIG, ...config };
    validateConfig(full);
    const { db, version } = connect(path);
    try {
      if (version > HISTORY_SCHEMA_VERSION) {
        // Checked before switching to WAL: don't modify a file we don't understand.
        throw new HistoryError(
          'MEMTIDE_ERR_HISTORY_VERSION',
          `history database ${path} has schema version ${version}, this memtide knows up to ${HISTORY_SCHEMA_VERSION}; upgrade memtide or use another file`,
        );
      }
      configureJournal(db, path);
      migrate(db, path, version);
      checkBucketWidth(db, path, full.aggregateBucketMs);
      return new HistoryStore(db, path, Object.freeze(full));
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** False after `close()`. */
  get isOpen(): boolean {
    return this.db.open;
  }

  /** Current `PRAGMA journal_mode` (`'wal'` for files, `'memory'` for `:memory:`). */
  journalMode(): string {
    this.assertOpen();
    return String(this.db.pragma('journal_mode', { simple: true }));
  }

  /** Current page cache limit of this connection in KiB (`PRAGMA cache_size`, negative = KiB). */
  pageCacheKiB(): number {
    this.assertOpen();
    return -Number(this.db.pragma('cache_size', { simple: true }));
  }

  /** Current `PRAGMA user_version` (the schema version of the file). */
  schemaVersion(): number {
    this.assertOpen();
    return Number(this.db.pragma('user_version', { simple: true }));
  }

  /**
   * Writes samples (a raw row per component plus one system row each) and
   * pressure changes in ONE transaction, updating the aggregate buckets in
   * the same transaction. All or nothing: on error nothing is written.
   *
   * @throws HistoryError `MEMTIDE_ERR_HISTORY_WRITE` (cause: the SQLite error).
   */
  append(samples: readonly MemorySample[], pressure: readonly PressureChange[] = []): void {
    this.assertOpen();
    if (samples.length === 0 && pressure.length === 0) return;
    try {
      this.appendTx(samples, pressure);
    } catch (err) {
      throw this.writeError('append', err);
    }
  }

  /**
   * Deletes raw rows older than `nowMs - rawRetentionMs`, and aggregate
   * buckets (and pressure events) lying entirely before
   * `nowMs - aggregateRetentionMs`, in one transaction. Records the raw cut so
   * that `'auto'` queries know where raw data may be incomplete.
   */
  applyRetention(nowMs: number): RetentionResult {
    this.assertOpen();
    try {
      return this.retentionTx(nowMs);
    } catch (err) {
      throw this.writeError('retention', err);
    }
  }

  /**
   * Streams the component series ordered by (timestamp, component). See
   * `SeriesQuery.resolution` for how raw and aggregate rows are combined.
   */
  *componentSeries(query: ComponentSeriesQuery): Generator<ComponentPoint, void, undefined> {
    this.assertOpen();
    const plan = planRange(query, this.rawBoundaryMs());
    const { component } = query;
    if (plan.aggregate) {
      const { from, to } = plan.aggregate;
      const rows =
        component === undefined
          ? this.iterate(this.stmts.componentBuckets, from, to)
          : this.iterate(this.stmts.componentBucketsOf, component, from, to);
      for (const row of rows) yield componentPointOfBucket(row);
    }
    if (plan.raw) {
      const { from, to } = plan.raw;
      const rows =
        component === undefined
          ? this.iterate(this.stmts.componentRaw, from, to)
          : this.iterate(this.stmts.componentRawOf, component, from, to);
      for (const row of rows) yield componentPointOfRaw(row);
    }
  }

  /** Streams the system series ordered by timestamp, like `componentSeries`. */
  *systemSeries(query: SeriesQuery): Generator<SystemPoint, void, undefined> {
    this.assertOpen();
    const plan = planRange(query, this.rawBoundaryMs());
    if (plan.aggregate) {
      for (const row of this.iterate(this.stmts.systemBuckets, plan.aggregate.from, plan.aggregate.to)) {
        yield systemPointOfBucket(row);
      }
    }
    if (plan.raw) {
      for (const row of this.iterate(this.stmts.systemRaw, plan.raw.from, plan.raw.to)) {
        yield systemPointOfRaw(row);
      }
    }
  }

  /** Streams stored pressure changes in `[sinceMs, untilMs)`, oldest first. */
  *pressureEvents(range: TimeRange): Generator<PressureChange, void, undefined> {
    this.assertOpen();
    for (const row of this.iterate(this.stmts.pressure, range.sinceMs, range.untilMs ?? MAX_MS)) {
      yield pressureChangeOf(row);
    }
  }

  /**
   * Writes alert notifications in one transaction (all or nothing). Alerts are
   * rare, so the alert sink calls this per notification rather than batching.
   *
   * @throws HistoryError `MEMTIDE_ERR_HISTORY_WRITE` (cause: the SQLite error).
   */
  appendAlerts(alerts: readonly Alert[]): void {
    this.assertOpen();
    if (alerts.length === 0) return;
    try {
      this.alertsTx(alerts);
    } catch (err) {
      throw this.writeError('alert append', err);
    }
  }

  /** Streams stored notifications in `[sinceMs, untilMs)`, oldest first (then in write order). */
  *alerts(query: AlertQuery): Generator<StoredAlert, void, undefined> {
    this.assertOpen();
    const until = query.untilMs ?? MAX_MS;
    const rows =
      query.status === undefined
        ? this.iterate(this.stmts.alerts, query.sinceMs, until)
        : this.iterate(this.stmts.alertsWithStatus, query.sinceMs, until, query.status);
    for (const row of rows) yield storedAlertOf(row);
  }

  /**
   * Marks every not yet acknowledged notification of `key` written at or
   * before `atMs` as acknowledged at `atMs`. Acknowledging again changes
   * nothing (the first acknowledgement time stays).
   *
   * @returns the number of notifications acknowledged now.
   */
  acknowledgeAlert(key: string, atMs: number): number {
    this.assertOpen();
    try {
      return this.stmts.acknowledgeAlert.run(atMs, key, atMs).changes;
    } catch (err) {
      throw this.writeError('alert acknowledgement', err);
    }
  }

  /**
   * Records an action when it is decided; returns its id (for `updateAction`).
   *
   * @throws HistoryError `MEMTIDE_ERR_HISTORY_WRITE` (cause: the SQLite error, e.g. an unknown source).
   */
  insertAction(action: ActionEntry): number {
    this.assertOpen();
    try {
      return Number(this.stmts.insertAction.run(actionParamsOf(action)).lastInsertRowid);
    } catch (err) {
      throw this.writeError('action insert', err);
    }
  }

  /**
   * Sets "memory after", the undo time or an error on a recorded action;
   * fields not given keep their stored value. False when there is no such id.
   */
  updateAction(id: number, update: ActionUpdate): boolean {
    this.assertOpen();
    try {
      return (
        this.stmts.updateAction.run({
          id,
          componentBytesAfter: update.componentBytesAfter ?? null,
          availableBytesAfter: update.availableBytesAfter ?? null,
          measuredAtMs: update.measuredAtMs ?? null,
          undoneAtMs: update.undoneAtMs ?? null,
          error: update.error ?? null,
        }).changes > 0
      );
    } catch (err) {
      throw this.writeError('action update', err);
    }
  }

  /**
   * Actions in `[sinceMs, untilMs)`, newest first, at most `limit` (read
   * whole: the limit bounds the rows, and no cursor stays open to block writes).
   *
   * @throws HistoryError `MEMTIDE_ERR_HISTORY_CONFIG` for a bad limit, `MEMTIDE_ERR_HISTORY_CORRUPT` for an undecodable row.
   */
  actions(query: ActionQuery): StoredAction[] {
    this.assertOpen();
    const limit = query.limit ?? 1000;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_ACTIONS_QUERY) {
      throw new HistoryError('MEMTIDE_ERR_HISTORY_CONFIG', `actions limit must be a whole number from 1 to ${MAX_ACTIONS_QUERY}, got ${limit}`);
    }
    const stmt = this.stmts.actions.busy ? this.db.prepare<[number, number, number], ActionRow>(SQL.actions) : this.stmts.actions;
    return stmt.all(query.sinceMs, query.untilMs ?? MAX_MS, limit).map(storedActionOf);
  }

  /**
   * Writes the trace CSV (`timestamp_ms,component,rss_bytes`): one row per
   * component per sample plus `system.available` and `system.total` rows,
   * ordered by timestamp then component. Old ranges come from aggregates
   * (bucket start, average bytes) like `componentSeries`. Streams: at most
   * one row per series and one ~64 KiB chunk are held in memory; the export
   * runs synchronously, so `out` must buffer (a `fs.WriteStream` does).
   *
   * @returns the number of data rows written (header excluded).
   */
  exportCsv(out: TextSink, query: SeriesQuery): number {
    const rows = mergeSorted(
      componentTraceRows(this.componentSeries(query)),
      systemTraceRows(this.systemSeries(query)),
      compareTraceRows,
    );
    let chunk = `${TRACE_CSV_HEADER}\n`;
    let count = 0;
    for (const row of rows) {
      chunk += traceLine(row);
      count++;
      if (chunk.length >= CSV_CHUNK_CHARS) {
        out.write(chunk);
        chunk = '';
      }
    }
    if (chunk.length > 0) out.write(chunk);
    return count;
  }

  /**
   * Copies the WAL into the database and truncates it (`wal_checkpoint(TRUNCATE)`).
   * SQLite checkpoints automatically; call this e.g. after retention or before a backup.
   */
  checkpoint(): CheckpointResult {
    this.assertOpen();
    const rows = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    const row = rows[0] ?? { busy: 0, log: 0, checkpointed: 0 };
    return { busy: row.busy !== 0, walFrames: row.log, checkpointedFrames: row.checkpointed };
  }

  /** Closes the connection (SQLite checkpoints and removes the WAL). Idempotent. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  // -- internals ------------------------------------------------------------

  private writeSample(sample: MemorySample): void {
    const bucketMs = floorTo(sample.timestampMs, this.config.aggregateBucketMs);
    for (const row of componentRowsOf(sample)) {
      this.stmts.insertComponent.run(row);
      this.stmts.upsertComponentBucket.run({ ...row, bucketMs });
    }
    const system = systemParamsOf(sample, bucketMs);
    this.stmts.insertSystem.run(system);
    this.stmts.upsertSystemBucket.run(system);
  }

  private writePressure(change: PressureChange): void {
    this.stmts.insertPressure.run(change.atMs, change.level, change.previous, JSON.stringify(change.reasons));
  }

  private deleteExpired(nowMs: number): RetentionResult {
    const s = this.stmts;
    const rawCut = nowMs - this.config.rawRetentionMs;
    const aggregateCut = nowMs - this.config.aggregateRetentionMs;
    // A bucket goes only once all of it is older than the cut.
    const bucketCut = floorTo(aggregateCut, this.config.aggregateBucketMs);
    const rawDeleted = s.deleteComponentsBefore.run(rawCut).changes + s.deleteSystemBefore.run(rawCut).changes;
    const aggregatesDeleted =
      s.deleteComponentBucketsBefore.run(bucketCut).changes + s.deleteSystemBucketsBefore.run(bucketCut).changes;
    const pressureDeleted = s.deletePressureBefore.run(aggregateCut).changes;
    const alertsDeleted = s.deleteAlertsBefore.run(aggregateCut).changes;
    const actionsDeleted = s.deleteActionsBefore.run(aggregateCut).changes;
    const horizon = this.rawHorizonMs();
    if (horizon === null || rawCut > horizon) s.setMeta.run(META_RAW_HORIZON_MS, rawCut);
    return {
      rawDeleted,
      aggregatesDeleted,
      pressureDeleted,
      ...(alertsDeleted > 0 ? { alertsDeleted } : {}),
      ...(actionsDeleted > 0 ? { actionsDeleted } : {}),
    };
  }

  /** The latest retention cut (read from the file: another process may run retention). */
  private rawHorizonMs(): number | null {
    return this.stmts.getMeta.get(META_RAW_HORIZON_MS)?.value ?? null;
  }

  /**
   * Where `'auto'` queries switch from aggregates to raw rows: the raw horizon
   * rounded up to a bucket start (the bucket containing the horizon has lost
   * some raw rows, its aggregate is complete). Never retained → all raw.
   */
  private rawBoundaryMs(): number {
    const horizon = this.rawHorizonMs();
    return horizon === null ? MIN_MS : ceilTo(horizon, this.config.aggregateBucketMs);
  }

  /**
   * A prepared statement runs one iteration at a time. If two queries of the
   * same kind are open at once (e.g. two nested `componentSeries` loops), the
   * second gets a throwaway copy instead of better-sqlite3's "statement is busy".
   */
  private iterate<P extends unknown[], R>(stmt: Stmt<P, R>, ...params: P): IterableIterator<R> {
    const free = stmt.busy ? (this.db.prepare(stmt.source) as Stmt<P, R>) : stmt;
    return free.iterate(...params);
  }

  private assertOpen(): void {
    if (!this.db.open) {
      throw new HistoryError('MEMTIDE_ERR_HISTORY_CLOSED', `history database ${this.path} is closed`);
    }
  }

  private writeError(operation: string, err: unknown): HistoryError {
    const hint = messageOf(err).includes('busy executing') ? ' (a query iterator on this store is still open)' : '';
    return new HistoryError(
      'MEMTIDE_ERR_HISTORY_WRITE',
      `history ${operation} on ${this.path} failed: ${messageOf(err)}${hint}`,
      { cause: err },
    );
  }
}
