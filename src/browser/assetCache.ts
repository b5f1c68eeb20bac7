/**
 * An asset cache with a byte budget (seed 8.1, 8.2, 8.4).
 *
 * lru-cache does the bookkeeping (`maxSize` + `sizeCalculation`); this wrapper
 * adds what a page needs on top: hit / miss / eviction counters and the hit
 * rate, de-duplicated loads, trimming on demand (idle time, memory pressure),
 * and the release of what an entry holds when it leaves the cache: object URLs
 * are revoked, ImageBitmaps closed, custom values passed to `release`.
 *
 * Ownership: a value handed to `set` belongs to the cache once stored; the
 * cache releases it when it is evicted, deleted, replaced or the cache is
 * disposed. A value too large for the budget is not stored (`set` answers
 * false) and stays the caller's.
 */
import { LRUCache } from 'lru-cache';

/** What can live in the cache. `ObjectUrlAsset` is what `setObjectUrl` stores. */
export type AssetValue = object | string;

/** An object URL together with the size of the Blob behind it (the string itself is tiny). */
export interface ObjectUrlAsset {
  readonly kind: 'object-url';
  readonly url: string;
  readonly bytes: number;
}

export interface AssetCacheOptions<V extends AssetValue> {
  /** Byte budget: the least recently used entries go when a new one would exceed it. */
  maxBytes: number;
  /** Also cap the number of entries (default: no cap besides the bytes). */
  maxEntries?: number;
  /** Entries older than this are dropped (counted as expirations); default: no expiry. */
  ttlMs?: number;
  /** Size of a value in bytes, when `set` is not told; default: `estimateBytes`. */
  sizeOf?: (value: V, key: string) => number;
  /** Extra release of a value leaving the cache (after the built-in one). */
  release?: (value: V, key: string) => void;
}

export interface AssetCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
  /** Entries dropped because a single value was larger than the whole budget. */
  rejected: number;
  entries: number;
  bytes: number;
  maxBytes: number;
  /** hits / (hits + misses); 0 before the first lookup. */
  hitRate: number;
}

export type AssetCacheErrorCode = 'MEMTIDE_ERR_ASSET_CACHE_CONFIG';

export class AssetCacheError extends Error {
  override readonly name = 'AssetCacheError';
  constructor(
    readonly code: AssetCacheErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const BYTES_PER_CHAR = 2;

function isObjectUrlAsset(value: unknown): value is ObjectUrlAsset {
  return typeof value === 'object' && value !== null && (value as ObjectUrlAsset).kind === 'object-url';
}

/**
 * A best-effort size in bytes: exact for buffers, Blobs, ImageBitmaps and
 * object-URL assets, an estimate (2 bytes a character of its JSON) for data.
 */
export function estimateBytes(value: unknown): number {
  if (typeof value === 'string') return Math.max(1, value.length * BYTES_PER_CHAR);
  if (value instanceof ArrayBuffer) return Math.max(1, value.byteLength);
  if (ArrayBuffer.isView(value)) return Math.max(1, value.byteLength);
  if (typeof Blob !== 'undefined' && value instanceof Blob) return Math.max(1, value.size);
  if (typeof ImageBitmap !== 'undefined' && value instanceof ImageBitmap) {
    const bitmap = value as ImageBitmap;
    return Math.max(1, bitmap.width * bitmap.height * 4);
  }
  if (isObjectUrlAsset(value)) return Math.max(1, value.bytes);
  try {
    return Math.max(1, (JSON.stringify(value)?.length ?? 1) * BYTES_PER_CHAR);
  } catch {
    return 1024; // cyclic or exotic: a nominal size rather than a crash
  }
}

/** Frees what a value holds outside the JS heap: object URLs, ImageBitmaps. */
export function releaseAsset(value: unknown): void {
  if (typeof value === 'string') {
    if (value.startsWith('blob:')) URL.revokeObjectURL(value);
    return;
  }
  if (isObjectUrlAsset(value)) {
    URL.revokeObjectURL(value.url);
    return;
  }
  if (typeof ImageBitmap !== 'undefined' && value instanceof ImageBitmap) (value as ImageBitmap).close();
}

export class AssetCache<V extends AssetValue = AssetValue> {
  readonly maxBytes: number;
  private readonly lru: LRUCache<string, V>;
  private readonly inFlight = new Map<string, Promise<V>>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private expirations = 0;
  private rejected = 0;
  private disposed = false;

  constructor(options: AssetCacheOptions<V>) {
    const { maxBytes, maxEntries, ttlMs } = options;
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new AssetCacheError('MEMTIDE_ERR_ASSET_CACHE_CONFIG', `maxBytes must be a positive integer, got ${String(maxBytes)}`);
    }
    if (maxEntries !== undefined && (!Number.isSafeInteger(maxEntries) || maxEntries <= 0)) {
      throw new AssetCacheError('MEMTIDE_ERR_ASSET_CACHE_CONFIG', `maxEntries must be a positive integer, got ${String(maxEntries)}`);
    }
    if (ttlMs !== undefined && (!Number.isFinite(ttlMs) || ttlMs <= 0)) {
      throw new AssetCacheError('MEMTIDE_ERR_ASSET_CACHE_CONFIG', `ttlMs must be a positive number, got ${String(ttlMs)}`);
    }
    this.maxBytes = maxBytes;
    const sizeOf = options.sizeOf ?? estimateBytes;
    const extraRelease = options.release;
    this.lru = new LRUCache<string, V>({
      maxSize: maxBytes,
      ...(maxEntries !== undefined ? { max: maxEntries } : {}),
      ...(ttlMs !== undefined ? { ttl: ttlMs } : {}),
      // lru-cache wants a positive integer; a bad sizeOf must not corrupt the budget.
      sizeCalculation: (value, key) => {
        const size = Math.ceil(sizeOf(value, key));
        return Number.isSafeInteger(size) && size > 0 ? size : 1;
      },
      dispose: (value, key, reason) => {
        if (reason === 'evict') this.evictions++;
        else if (reason === 'expire') this.expirations++;
        releaseAsset(value);
        extraRelease?.(value, key);
      },
    });
  }

  /** The value (and it becomes the most recently used), counting a hit or a miss. */
  get(key: string): V | undefined {
    if (this.disposed) return undefined;
    const value = this.lru.get(key);
    if (value === undefined) this.misses++;
    else this.hits++;
    return value;
  }

  /** Whether the key is cached; counts nothing, changes no recency. */
  has(key: string): boolean {
    return !this.disposed && this.lru.has(key);
  }

  /**
   * Stores a value (the cache now owns it). `sizeBytes` overrides `sizeOf`.
   * False when the value alone exceeds the budget: then nothing is stored,
   * an older value under the key is released, and the caller keeps this one.
   */
  set(key: string, value: V, sizeBytes?: number): boolean {
    if (this.disposed) return false;
    const size = sizeBytes === undefined ? undefined : Math.max(1, Math.ceil(sizeBytes));
    if (size !== undefined && size > this.maxBytes) {
      this.lru.delete(key);
      this.rejected++;
      return false;
    }
    this.lru.set(key, value, size === undefined ? {} : { size });
    if (!this.lru.has(key)) {
      // sizeOf said it is larger than the budget: lru-cache refused it.
      this.rejected++;
      return false;
    }
    return true;
  }

  /** Stores a Blob as an object URL sized by the Blob; the URL is revoked when it leaves. */
  setObjectUrl(key: string, blob: Blob): ObjectUrlAsset | null {
    if (this.disposed || blob.size > this.maxBytes) {
      this.rejected++;
      return null;
    }
    const asset: ObjectUrlAsset = { kind: 'object-url', url: URL.createObjectURL(blob), bytes: Math.max(1, blob.size) };
    this.set(key, asset as unknown as V, asset.bytes);
    return asset;
  }

  /**
   * The cached value, or the result of `load` (stored, and shared by
   * concurrent callers of the same key so a value is never fetched twice).
   * A failed load is not cached.
   */
  async getOrLoad(key: string, load: () => Promise<V>, sizeOf?: (value: V) => number): Promise<V> {
    const cached = this.get(key);
    if (cached !== undefined) return cached;
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const promise = (async () => {
      try {
        const value = await load();
        if (!this.disposed) this.set(key, value, sizeOf?.(value));
        return value;
      } finally {
        this.inFlight.delete(key);
      }
    })();
    this.inFlight.set(key, promise);
    return promise;
  }

  /** Removes and releases one entry. */
  delete(key: string): boolean {
    return !this.disposed && this.lru.delete(key);
  }

  /** Evicts least recently used entries until at most `targetBytes` remain (idle cleanup, pressure). */
  trim(targetBytes = 0): number {
    if (this.disposed) return 0;
    let evicted = 0;
    while (this.lru.calculatedSize > targetBytes && this.lru.size > 0) {
      this.lru.pop();
      evicted++;
    }
    return evicted;
  }

  /** Drops expired entries now (lru-cache otherwise drops them when touched). */
  purgeStale(): boolean {
    return !this.disposed && this.lru.purgeStale();
  }

  /** Keys from most to least recently used. */
  keys(): string[] {
    return this.disposed ? [] : [...this.lru.keys()];
  }

  get size(): number {
    return this.disposed ? 0 : this.lru.size;
  }

  get bytes(): number {
    return this.disposed ? 0 : this.lru.calculatedSize;
  }

  get hitRate(): number {
    const lookups = this.hits + this.misses;
    return lookups === 0 ? 0 : this.hits / lookups;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  stats(): AssetCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      expirations: this.expirations,
      rejected: this.rejected,
      entries: this.size,
      bytes: this.bytes,
      maxBytes: this.maxBytes,
      hitRate: this.hitRate,
    };
  }

  /**
   * Releases every entry (object URLs revoked, bitmaps closed). Afterwards the
   * cache stays empty: `get` misses silently and `set` stores nothing (so a
   * late callback of an unmounted component does no harm). Idempotent.
   */
  dispose(): void {
    if (this.disposed) return;
    this.lru.clear(); // dispose(reason 'delete') releases each value
    this.inFlight.clear();
    this.disposed = true;
  }
}
