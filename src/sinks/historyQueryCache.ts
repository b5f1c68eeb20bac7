/**
 * The history API's query cache: finished response bodies by normalised
 * query key, in an LRU bounded by bytes (lru-cache `maxSize` +
 * `sizeCalculation`), each with its own time to live (a range that ended in
 * the past does not change; one ending "now" is stale after the next history
 * flush). Hits, misses, evictions and expirations are counted for `/metrics`
 * and `GET /api/history/cache`.
 *
 * Under memory pressure the coordinator shrinks it (`shrink`: least recently
 * used entries go until it fits a small budget, and it stays that small) and
 * gives the budget back when pressure has fallen (`restore`). lru-cache's
 * `maxSize` is fixed at construction, so the smaller limit is enforced here.
 */
import { LRUCache } from 'lru-cache';

/**
 * Bytes an entry costs beyond its body: the key (UTF-16 in V8, two bytes a
 * character) and a fixed allowance for the Buffer object and the LRU slot.
 */
export const ENTRY_OVERHEAD_BYTES = 128;

/** What an entry counts against the byte budget. */
export function entrySize(key: string, body: Uint8Array): number {
  return body.byteLength + 2 * key.length + ENTRY_OVERHEAD_BYTES;
}

export interface HistoryQueryCacheOptions {
  /** Byte budget; 0 disables caching (every lookup is a miss, nothing is kept). */
  maxBytes: number;
  /** Clock for TTLs (tests); default `performance`. */
  perf?: { now(): number };
}

export interface HistoryCacheStats {
  /** The configured budget. */
  maxBytes: number;
  /** The budget in force: `maxBytes`, or the small one while shrunk. */
  limitBytes: number;
  shrunk: boolean;
  /** Bytes held now (expired entries count until they are looked up or evicted). */
  bytes: number;
  entries: number;
  hits: number;
  misses: number;
  /** Entries dropped to make room (least recently used first). */
  evictions: number;
  /** Entries found past their time to live (dropped, counted as misses too). */
  expirations: number;
  /** Bodies not kept because one alone exceeds the budget. */
  rejected: number;
  /** hits / (hits + misses), 0 before the first lookup. */
  hitRate: number;
}

export class HistoryCacheError extends Error {
  readonly code = 'MEMTIDE_ERR_HISTORY_CACHE';
  constructor(message: string) {
    super(message);
    this.name = 'HistoryCacheError';
  }
}

export interface HistoryQueryCache {
  /** The body cached under `key` (a hit, and now the most recently used), or undefined (a miss). */
  get(key: string): Buffer | undefined;
  /**
   * Keeps `body` for `ttlMs`, evicting the least recently used entries
   * until it fits. False when it cannot be kept (larger than the whole budget, or caching off).
   */
  set(key: string, body: Buffer, ttlMs: number): boolean;
  /** Records that the answer for `key` was too large to keep (a streamed body stops being copied past `maxBodyBytes`). */
  reject(key: string): void;
  /** The largest body `set` accepts for `key`'s length (callers stop buffering past it). */
  maxBodyBytes(key: string): number;
  stats(): HistoryCacheStats;
  clear(): void;
  /**
   * Drops least recently used entries until at most `toBytes` are held
   * (default: a sixteenth of the budget, at most 1 MiB) and keeps to that
   * until `restore`. Returns the bytes freed.
   */
  shrink(toBytes?: number): number;
  /** Back to the configured budget. */
  restore(): void;
}

/** The shrunk budget by default: small enough to matter little, large enough for the dashboard's live range. */
export const SHRUNK_CACHE_BYTES = 1024 * 1024;

export function createHistoryQueryCache(options: HistoryQueryCacheOptions): HistoryQueryCache {
  const { maxBytes } = options;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new HistoryCacheError(`the history cache budget must be a whole number of bytes >= 0, got ${maxBytes}`);
  }
  const counts = { hits: 0, misses: 0, evictions: 0, expirations: 0, rejected: 0 };
  let limit = maxBytes;
  const lru =
    maxBytes === 0
      ? null
      : new LRUCache<string, Buffer>({
          maxSize: maxBytes,
          sizeCalculation: (body, key) => entrySize(key, body),
          // Read the clock on every check instead of caching it for 1 ms behind a timer.
          ttlResolution: 0,
          ...(options.perf ? { perf: options.perf } : {}),
          dispose: (_body, _key, reason) => {
            if (reason === 'evict') counts.evictions += 1;
            else if (reason === 'expire') counts.expirations += 1;
          },
        });

  /** Least recently used entries out (counted as evictions) until the smaller limit holds. */
  const fit = () => {
    while (lru && lru.calculatedSize > limit && lru.size > 0) lru.pop();
  };

  const reject = (key: string) => {
    if (!lru) return; // caching off: nothing is ever kept, nothing is refused
    // Like lru-cache for an oversized set: drop an older body of this key, so nothing stale outlives a refresh.
    lru.delete(key);
    counts.rejected += 1;
  };

  return {
    get(key) {
      const body = lru?.get(key);
      if (body === undefined) counts.misses += 1;
      else counts.hits += 1;
      return body;
    },
    set(key, body, ttlMs) {
      if (!lru || entrySize(key, body) > limit) {
        reject(key);
        return false;
      }
      lru.set(key, body, { ttl: Math.max(1, Math.ceil(ttlMs)) });
      fit();
      return true;
    },
    reject,
    maxBodyBytes: (key) => Math.max(0, limit - 2 * key.length - ENTRY_OVERHEAD_BYTES),
    shrink(toBytes = Math.min(SHRUNK_CACHE_BYTES, Math.floor(maxBytes / 16))) {
      if (!Number.isSafeInteger(toBytes) || toBytes < 0) throw new HistoryCacheError(`shrink: expected a whole number of bytes >= 0, got ${toBytes}`);
      const before = lru?.calculatedSize ?? 0;
      limit = Math.min(maxBytes, toBytes);
      fit();
      return before - (lru?.calculatedSize ?? 0);
    },
    restore() {
      limit = maxBytes;
    },
    stats() {
      const lookups = counts.hits + counts.misses;
      return {
        maxBytes,
        limitBytes: limit,
        shrunk: limit < maxBytes,
        bytes: lru?.calculatedSize ?? 0,
        entries: lru?.size ?? 0,
        ...counts,
        hitRate: lookups === 0 ? 0 : counts.hits / lookups,
      };
    },
    clear: () => lru?.clear(),
  };
}
