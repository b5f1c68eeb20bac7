/**
 * The governor's I/O to Ollama, through the `ollama` npm client: what is
 * loaded (`/api/ps`), what a model is (`/api/show`), which tags exist
 * (`/api/tags`), unload (`keep_alive: 0`) and preload. No policy here.
 *
 * Every failure becomes an {@link OllamaApiError} with a `code`; reads are
 * retried with exponential backoff (connection failures, timeouts and 5xx;
 * never 4xx), writes are not (the caller decides). {@link pollPs} turns
 * `/api/ps` into an observable source that reports failures and goes on, so
 * an Ollama restart never ends governing.
 */
import { LRUCache } from 'lru-cache';
import { Ollama } from 'ollama';
import {
  asyncScheduler,
  catchError,
  defer,
  distinctUntilChanged,
  EMPTY,
  exhaustMap,
  firstValueFrom,
  map,
  switchMap,
  timer,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import type { ModelFacts } from '../operators/models/modelMemory.js';
import type { TagInfo } from '../operators/models/quantization.js';

/** A model `/api/ps` lists as loaded. */
export interface PsModel {
  name: string;
  /** `size`: bytes the runner holds (RAM + VRAM). */
  sizeBytes: number;
  sizeVramBytes: number;
  /** `expires_at`; null when absent or unparsable. */
  expiresAtMs: number | null;
  /** `context_length` (num_ctx it was loaded with; newer servers only). */
  contextLength: number | null;
  quantization: string | null;
}

export interface PreloadOptions {
  numCtx?: number | null;
  /** `options.num_batch` (a runner option: the load must match what requests will send). */
  numBatch?: number | null;
  keepAlive?: number | string | null;
  /** Sent as `options.use_mmap` only when false (on is Ollama's default). */
  useMmap?: boolean | null;
}

/** What the governor needs from Ollama; tests give it fakes. */
export interface OllamaApi {
  ps(): Promise<PsModel[]>;
  /** Facts from `/api/show` (`fileSizeBytes` is null: the size comes from `/api/tags`). */
  show(model: string): Promise<ModelFacts>;
  list(): Promise<TagInfo[]>;
  /** `generate({ model, prompt: '', keep_alive: 0 })`; resolves when Ollama answers `done_reason: "unload"`. */
  unload(model: string): Promise<void>;
  /** `generate({ model, prompt: '' })`: loads the model and returns. */
  preload(model: string, options?: PreloadOptions): Promise<void>;
}

export type OllamaApiErrorCode =
  | 'MEMTIDE_ERR_OLLAMA_UNREACHABLE'
  | 'MEMTIDE_ERR_OLLAMA_NOT_FOUND'
  | 'MEMTIDE_ERR_OLLAMA_HTTP'
  | 'MEMTIDE_ERR_OLLAMA_RESPONSE';

export class OllamaApiError extends Error {
  constructor(
    readonly code: OllamaApiErrorCode,
    /** `ps`, `show llama3.1:8b`, ... */
    readonly operation: string,
    message: string,
    /** HTTP status when Ollama answered; null when it could not be reached. */
    readonly status: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(`${operation}: ${message}`, options);
    this.name = 'OllamaApiError';
  }

  /** Worth another try: unreachable, timed out, or a 5xx. */
  get retryable(): boolean {
    return this.code === 'MEMTIDE_ERR_OLLAMA_UNREACHABLE' || (this.code === 'MEMTIDE_ERR_OLLAMA_HTTP' && (this.status ?? 0) >= 500);
  }
}

export interface OllamaApiOptions {
  /** e.g. `http://127.0.0.1:11434` (`models.upstream`). */
  host: string;
  /** fetch to use (tests); default the global one. */
  fetch?: typeof fetch;
  /** Extra tries of a failed read. */
  retries?: number;
  /** First backoff; doubles each try. */
  retryBaseMs?: number;
  /** One HTTP call is aborted after this long (a stuck Ollama must not stall the governor). */
  timeoutMs?: number;
  /** Clock of the backoff waits. */
  scheduler?: SchedulerLike;
}

/** Turns whatever the client threw into an OllamaApiError. */
export function toOllamaApiError(operation: string, error: unknown): OllamaApiError {
  if (error instanceof OllamaApiError) return error;
  const record = (typeof error === 'object' && error !== null ? error : {}) as { name?: unknown; status_code?: unknown; message?: unknown; error?: unknown };
  const message = typeof record.message === 'string' ? record.message : String(error);
  // ollama-js does not export ResponseError; it is recognised by name and status_code.
  if (record.name === 'ResponseError' && typeof record.status_code === 'number') {
    const status = record.status_code;
    const code = status === 404 ? 'MEMTIDE_ERR_OLLAMA_NOT_FOUND' : 'MEMTIDE_ERR_OLLAMA_HTTP';
    return new OllamaApiError(code, operation, `HTTP ${status}: ${typeof record.error === 'string' ? record.error : message}`, status, { cause: error });
  }
  if (error instanceof SyntaxError) return new OllamaApiError('MEMTIDE_ERR_OLLAMA_RESPONSE', operation, `invalid JSON: ${message}`, null, { cause: error });
  const timedOut = record.name === 'TimeoutError' || record.name === 'AbortError';
  return new OllamaApiError('MEMTIDE_ERR_OLLAMA_UNREACHABLE', operation, timedOut ? `timed out (${message})` : `cannot reach Ollama (${describeCause(error)})`, null, { cause: error });
}

function describeCause(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (cause && typeof cause.code === 'string') return `${cause.code}${typeof cause.message === 'string' ? `: ${cause.message}` : ''}`;
  return error instanceof Error ? error.message : String(error);
}

const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);
const str = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);
/** Some GGUFs give head_count_kv per layer (an array): the largest layer decides the memory. */
const numOrMax = (value: unknown): number | null =>
  Array.isArray(value) ? value.reduce<number | null>((max, v) => (num(v) !== null && (max === null || (v as number) > max) ? (v as number) : max), null) : num(value);

function parseTime(value: unknown): number | null {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.getTime();
  if (typeof value !== 'string') return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

function objectOf(value: unknown, operation: string, what: string): Record<string, unknown> {
  if (value instanceof Map) return Object.fromEntries(value) as Record<string, unknown>;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  throw new OllamaApiError('MEMTIDE_ERR_OLLAMA_RESPONSE', operation, `${what} is not an object`);
}

function modelsOf(body: unknown, operation: string): Record<string, unknown>[] {
  const models = objectOf(body, operation, 'the answer').models;
  if (!Array.isArray(models)) throw new OllamaApiError('MEMTIDE_ERR_OLLAMA_RESPONSE', operation, '"models" is not an array');
  return models.map((m, i) => objectOf(m, operation, `models[${i}]`));
}

/** `/api/ps` answer -> PsModel[]. */
export function parsePs(body: unknown): PsModel[] {
  return modelsOf(body, 'ps').map((m, i) => {
    const name = str(m.name) ?? str(m.model);
    const size = num(m.size);
    if (name === null || size === null) throw new OllamaApiError('MEMTIDE_ERR_OLLAMA_RESPONSE', 'ps', `models[${i}] has no name or size`);
    const details = typeof m.details === 'object' && m.details !== null ? (m.details as Record<string, unknown>) : {};
    return {
      name,
      sizeBytes: size,
      sizeVramBytes: num(m.size_vram) ?? 0,
      expiresAtMs: parseTime(m.expires_at),
      contextLength: num(m.context_length),
      quantization: str(details.quantization_level),
    };
  });
}

/** `/api/tags` answer -> TagInfo[]. */
export function parseTags(body: unknown): TagInfo[] {
  return modelsOf(body, 'list').flatMap((m) => {
    const name = str(m.name) ?? str(m.model);
    if (name === null) return [];
    const details = typeof m.details === 'object' && m.details !== null ? (m.details as Record<string, unknown>) : {};
    return [{ name, sizeBytes: num(m.size), quantization: str(details.quantization_level), parameterSize: str(details.parameter_size) }];
  });
}

/** `/api/show` answer -> ModelFacts. */
export function parseShow(model: string, body: unknown): ModelFacts {
  const operation = `show ${model}`;
  const answer = objectOf(body, operation, 'the answer');
  const info = answer.model_info === undefined || answer.model_info === null ? {} : objectOf(answer.model_info, operation, 'model_info');
  const details = typeof answer.details === 'object' && answer.details !== null ? (answer.details as Record<string, unknown>) : {};
  const arch = str(info['general.architecture']);
  const key = (suffix: string) => (arch === null ? undefined : info[`${arch}.${suffix}`]);
  return {
    name: model,
    architecture: arch,
    parameterCount: num(info['general.parameter_count']),
    blockCount: num(key('block_count')),
    contextLength: num(key('context_length')),
    embeddingLength: num(key('embedding_length')),
    headCount: numOrMax(key('attention.head_count')),
    headCountKv: numOrMax(key('attention.head_count_kv')),
    keyLength: num(key('attention.key_length')),
    vocabSize: num(key('vocab_size')),
    quantization: str(details.quantization_level),
    fileSizeBytes: null,
  };
}

/** The real API over the `ollama` client. */
export function createOllamaApi(options: OllamaApiOptions): OllamaApi {
  const retries = options.retries ?? 2;
  const retryBaseMs = options.retryBaseMs ?? 250;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const scheduler = options.scheduler ?? asyncScheduler;
  const baseFetch = options.fetch ?? fetch;
  const timedFetch: typeof fetch = (input, init) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    return baseFetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
  };
  const client = new Ollama({ host: options.host, fetch: timedFetch });

  const call = async <T>(operation: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      throw toOllamaApiError(operation, error);
    }
  };

  const read = async <T>(operation: string, fn: () => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await call(operation, fn);
      } catch (error) {
        const apiError = error as OllamaApiError;
        if (!apiError.retryable || attempt >= retries) throw apiError;
        await firstValueFrom(timer(retryBaseMs * 2 ** attempt, scheduler));
      }
    }
  };

  return {
    ps: () => read('ps', async () => parsePs(await client.ps())),
    show: (model) => read(`show ${model}`, async () => parseShow(model, await client.show({ model }))),
    list: () => read('list', async () => parseTags(await client.list())),
    async unload(model) {
      const answer = await call(`unload ${model}`, () => client.generate({ model, prompt: '', keep_alive: 0, stream: false }));
      if ((answer as { done_reason?: unknown }).done_reason !== 'unload') {
        throw new OllamaApiError('MEMTIDE_ERR_OLLAMA_RESPONSE', `unload ${model}`, `expected done_reason "unload", got ${JSON.stringify((answer as { done_reason?: unknown }).done_reason)}`);
      }
    },
    async preload(model, preload = {}) {
      const opts: Record<string, number | boolean> = {};
      if (preload.numCtx != null) opts.num_ctx = preload.numCtx;
      if (preload.numBatch != null) opts.num_batch = preload.numBatch;
      if (preload.useMmap === false) opts.use_mmap = false;
      await call(`preload ${model}`, () =>
        client.generate({
          model,
          prompt: '',
          stream: false,
          ...(preload.keepAlive != null ? { keep_alive: preload.keepAlive } : {}),
          ...(Object.keys(opts).length ? { options: opts } : {}),
        }),
      );
    },
  };
}

/** One `/api/ps` reading. */
export interface PsSnapshot {
  /** When the request was sent: an entry created after it cannot be in this answer. */
  requestedAtMs: number;
  atMs: number;
  models: PsModel[];
}

/** Longest pause between two `/api/ps` reads while Ollama keeps failing. */
export const PS_MAX_BACKOFF_MS = 30_000;

/**
 * Reads `/api/ps` every `intervalMs` (following config changes: a new
 * interval restarts the timer). A slow read is never overlapped by the next
 * (`exhaustMap`); a failed one is reported to `onError` and skipped, so the
 * governor keeps its last state and tries again. While Ollama stays down the
 * reads back off: after `f` failures in a row the next read waits
 * `intervalMs x 2^(f-1)` (at most 30 s, never less than the interval), so a
 * stopped Ollama is not asked every 2 s all day and a restarted one is seen
 * within 30 s; the first success resets the pace.
 *
 * ```
 * interval: i-----------------------
 * ps:       a---#---#-------#------c   (# = unreachable; reads at 0, 1, 2, 4, 8 intervals)
 * result:   a----------------------c   (onError got each failure)
 * ```
 */
export function pollPs(
  api: Pick<OllamaApi, 'ps'>,
  intervalMs$: Observable<number>,
  onError: (error: unknown) => void,
  scheduler: SchedulerLike = asyncScheduler,
): Observable<PsSnapshot> {
  return defer(() => {
    let failures = 0;
    let nextReadAtMs = -Infinity;
    return intervalMs$.pipe(
      distinctUntilChanged(),
      switchMap((intervalMs) => timer(0, intervalMs, scheduler).pipe(map(() => intervalMs))),
      exhaustMap((intervalMs) => {
        const requestedAtMs = scheduler.now();
        if (requestedAtMs < nextReadAtMs) return EMPTY;
        return defer(() => api.ps()).pipe(
          map((models): PsSnapshot => {
            failures = 0;
            nextReadAtMs = -Infinity;
            return { requestedAtMs, atMs: scheduler.now(), models };
          }),
          catchError((error: unknown) => {
            failures += 1;
            const waitMs = Math.max(intervalMs, Math.min(PS_MAX_BACKOFF_MS, intervalMs * 2 ** (failures - 1)));
            nextReadAtMs = requestedAtMs + waitMs;
            onError(error);
            return EMPTY;
          }),
        );
      }),
    );
  });
}

/** `/api/show` and `/api/tags`, cached: model facts change only when a model is pulled again. */
export interface ModelCatalog {
  /** Facts of `model` (cached); null when they cannot be read (reported to onError). */
  facts(model: string): Promise<ModelFacts | null>;
  /** Cached facts only, without asking Ollama. */
  cachedFacts(model: string): ModelFacts | undefined;
  /** Why the last `facts(model)` came back empty (null after a success). */
  factsError(model: string): unknown;
  /** Pulled tags (cached); the last good list, or null, when they cannot be read. */
  tags(): Promise<TagInfo[] | null>;
  cachedTags(): TagInfo[] | null;
}

export interface ModelCatalogOptions {
  onError: (operation: string, error: unknown) => void;
  /** Clock of the cache (virtual in tests). */
  scheduler?: SchedulerLike;
  factsTtlMs?: number;
  tagsTtlMs?: number;
}

export function createModelCatalog(api: Pick<OllamaApi, 'show' | 'list'>, options: ModelCatalogOptions): ModelCatalog {
  const scheduler = options.scheduler ?? asyncScheduler;
  const tagsTtlMs = options.tagsTtlMs ?? 60_000;
  // The scheduler's clock, read at every check (ttlResolution 0: lru-cache otherwise caches now() behind a
  // real timer); +1 because lru-cache reads an entry stamped at time 0 as one without a TTL (virtual time starts at 0).
  const perf = { now: () => scheduler.now() + 1 };
  const facts = new LRUCache<string, ModelFacts>({ max: 256, ttl: options.factsTtlMs ?? 10 * 60_000, ttlResolution: 0, perf });
  const factsInFlight = new Map<string, Promise<ModelFacts | null>>();
  const factsErrors = new LRUCache<string, { error: unknown }>({ max: 256 });
  let tags: { atMs: number; value: TagInfo[] } | null = null;
  let tagsInFlight: Promise<TagInfo[] | null> | null = null;

  return {
    facts(model) {
      const cached = facts.get(model);
      if (cached) return Promise.resolve(cached);
      let pending = factsInFlight.get(model);
      if (!pending) {
        pending = api
          .show(model)
          .then((value) => {
            facts.set(model, value);
            factsErrors.delete(model);
            return value;
          })
          .catch((error: unknown) => {
            options.onError(`show ${model}`, error);
            factsErrors.set(model, { error });
            return null;
          })
          .finally(() => factsInFlight.delete(model));
        factsInFlight.set(model, pending);
      }
      return pending;
    },
    cachedFacts: (model) => facts.get(model),
    factsError: (model) => factsErrors.get(model)?.error ?? null,
    tags() {
      if (tags && scheduler.now() - tags.atMs < tagsTtlMs) return Promise.resolve(tags.value);
      tagsInFlight ??= api
        .list()
        .then((value) => {
          tags = { atMs: scheduler.now(), value };
          return value;
        })
        .catch((error: unknown) => {
          options.onError('list', error);
          return tags?.value ?? null;
        })
        .finally(() => {
          tagsInFlight = null;
        });
      return tagsInFlight;
    },
    cachedTags: () => tags?.value ?? null,
  };
}
