/**
 * The contract between the Ollama proxy (which sees every request) and the
 * model governor (which decides). The proxy asks before forwarding, tells
 * when a request ends, and otherwise just streams bytes; every policy lives
 * behind `admit`.
 */
import type { Observable } from 'rxjs';
import type { LoadedModel } from '../model.js';

/** Which Ollama / OpenAI endpoint a request came through. */
export type ModelEndpoint = 'generate' | 'chat' | 'embed' | 'embeddings' | 'openai-chat' | 'openai-completions' | 'openai-embeddings';

export interface AdmissionRequest {
  /** Model as the client named it (e.g. `llama3.1:8b`). */
  model: string;
  endpoint: ModelEndpoint;
  /** Estimated prompt tokens (chars x 0.35 like Meetily, or better). */
  promptTokens: number;
  /** `options.num_ctx` the client sent, if any. */
  requestedNumCtx?: number;
  /** `options.num_batch` the client sent, if any. */
  requestedNumBatch?: number;
  /** `keep_alive` the client sent, if any (Ollama semantics: number = seconds, string = Go duration). */
  requestedKeepAlive?: number | string;
  /** Aborted when the client goes away while waiting for admission. */
  signal?: AbortSignal;
}

/**
 * At which num_ctx a client's requests to a model will run: `governed`, sized
 * by the governor (native requests, and /v1 chat requests the proxy
 * translates to /api/chat); `server-default`, the server's own
 * (`models.serverContextLength`: /v1 requests forwarded as they are).
 */
export type ContextRun = 'governed' | 'server-default';

/** Which idle models `unloadIdle` takes: unpinned ones, or every idle one (pinned too). */
export type UnloadIdleScope = 'idle-unpinned' | 'idle-all';

export interface UnloadIdleResult {
  /** Models unloaded (or, in observe-only mode, that would have been). */
  models: string[];
  /** Their sizes added up (what Ollama reported, or the estimate). */
  bytes: number;
}

/**
 * Why optional requests (`X-Memtide-Priority: optional`, e.g. live summaries)
 * are deferred now; the proxy answers them 503 with `Retry-After`.
 */
export interface OptionalDeferral {
  reason: string;
  retryAfterMs: number;
  sinceMs: number;
}

export interface Admission {
  /** Model to forward to: the same, or another quantization tag of it that fits. */
  model: string;
  /** `options.num_ctx` to inject; null = leave the request as it is. */
  numCtx: number | null;
  /** `options.num_batch` to inject (models.numBatch); null or absent = leave the request as it is. */
  numBatch?: number | null;
  /** `keep_alive` to inject; null = leave the request as it is. */
  keepAlive: number | string | null;
  /** Must be called exactly once when the request finished (or failed / was cancelled). */
  release(outcome: { ok: boolean; status?: number; error?: string }): void;
}

/** Refusal with the HTTP answer the proxy should give (503 + Retry-After while pressure holds loads). */
export class GovernorError extends Error {
  constructor(
    readonly code:
      | 'MEMTIDE_ERR_GOVERNOR_HELD'
      | 'MEMTIDE_ERR_GOVERNOR_QUEUE_FULL'
      | 'MEMTIDE_ERR_GOVERNOR_TOO_LARGE'
      | 'MEMTIDE_ERR_GOVERNOR_STOPPED'
      /** A bad argument to a governor method (e.g. a negative budget cap). */
      | 'MEMTIDE_ERR_GOVERNOR_INPUT',
    message: string,
    readonly status: number,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = 'GovernorError';
  }
}

/** Something the governor did or decided (goes to the actions table, dashboard, reports). */
export interface GovernorAction {
  atMs: number;
  kind: 'unload' | 'load' | 'hold' | 'release-hold' | 'resize-context' | 'switch-quantization' | 'reject';
  model: string | null;
  reason: string;
  /** Bytes freed (unload) or committed (load), when known. */
  bytes: number | null;
  /** False in observe-only mode: decided and recorded, not executed. */
  executed: boolean;
}

export interface ModelGovernor {
  admit(request: AdmissionRequest): Promise<Admission>;
  /**
   * A temporary ceiling on the model budget (the coordinator's budget
   * balancing); null lifts it. A lower ceiling unloads idle models (least
   * recently used first) to fit; a load that fits the budget but not the
   * ceiling waits instead of being refused.
   */
  setBudgetCap(bytes: number | null): void;
  /** Unloads the idle models of `scope` now (never one with a request in flight). */
  unloadIdle(scope: UnloadIdleScope, reason?: string): Promise<UnloadIdleResult>;
  /** Defers optional requests (null: lets them through again). The proxy asks `optionalDeferral()` before admitting. */
  deferOptional(deferral: Omit<OptionalDeferral, 'sinceMs'> | null): void;
  optionalDeferral(): OptionalDeferral | null;
  /**
   * The context to tell clients a model has (the proxy rewrites `/api/show`'s
   * `*.context_length` with it), given its trained context: what its requests
   * will run at, minus the answer reserve, so a client that sizes its prompts
   * by it is never truncated. Pure (config only); null: advertise nothing
   * (no config yet, observe-only, stopped). Optional: without it the proxy
   * leaves /api/show alone.
   */
  advertisedContext?(model: string, trainedContext: number, runsAt: ContextRun): number | null;
  /** Loaded models with size, idle time and pin state; replays the latest list. */
  readonly models$: Observable<LoadedModel[]>;
  readonly actions$: Observable<GovernorAction>;
  list(): LoadedModel[];
  unload(name: string): Promise<void>;
  pin(name: string): void;
  unpin(name: string): void;
  stop(): void;
}
