/**
 * whisper.cpp in this process, through `@napi-rs/whisper`, on worker threads.
 *
 * Why worker threads: `Whisper#full` is synchronous and takes seconds per
 * 30 s chunk; on the main thread it would freeze the governor (sampling, HTTP,
 * pressure) it is supposed to serve. Each worker holds one model copy and runs
 * one chunk at a time, so `maxCopies` (the operator's maxConcurrent) bounds both
 * the CPU and the memory. Terminating a worker frees its copy entirely (the
 * addon's finalizers run when the worker's environment is torn down).
 *
 * - Lazy: nothing is loaded until the first chunk.
 * - Idle unload: a copy idle for `idleUnloadMs` (on `scheduler`) is unloaded.
 * - On demand: `unload()` (pressure critical) and `shrinkTo(n)` (pressure high).
 * - The model file is checked first (`inspectWhisperModel`): a wrong path or a
 *   truncated file gets an error naming the byte offset instead of the addon's
 *   "Failed to initialize Whisper model", after which @napi-rs/whisper 0.0.4
 *   crashes the process when the worker is torn down.
 *
 * Isolation (`isolation`): worker threads share memtide's process, so a
 * native abort inside whisper.cpp (an assertion, running out of memory) ends
 * memtide too, and an unloaded copy's memory partly stays in the C
 * allocator's arenas of the process. `"process"` runs each copy in a child
 * process instead (whisperProcess.ts): a crash fails the chunk, and an unload
 * returns everything. The `server` transcriber (whisper-server) isolates too,
 * but keeps its model loaded.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { asyncScheduler, type SchedulerLike, type Subscription } from 'rxjs';
import type { AudioChunk } from '../../model.js';
import { inspectWhisperModel } from './ggmlModel.js';
import { abortedError, int16ToFloat32, TranscriberError, type Transcriber, type TranscriptionResult } from './transcriber.js';
import { startWhisperProcess, type EngineHost } from './whisperProcess.js';
import { WHISPER_WORKER_SOURCE, type TranscribeMessage, type WorkerData, type WorkerReply } from './whisperWorker.js';

export interface WhisperInProcessOptions {
  modelPath: string;
  /** CPU threads per copy; null/undefined: available cores, at most 4. */
  threads?: number | null;
  language?: string;
  translate?: boolean;
  temperature?: number;
  /** Model copies loaded at most (one per concurrent chunk). Default 1. */
  maxCopies?: number;
  /** Unload a copy after this long idle. */
  idleUnloadMs: number;
  /** Clock of the idle timer. */
  scheduler?: SchedulerLike;
  /** Where each model copy runs: a worker thread of this process (default) or a child process of its own. */
  isolation?: 'thread' | 'process';
}

interface Job {
  id: number;
  chunk: AudioChunk;
  resolve(result: TranscriptionResult): void;
  reject(error: unknown): void;
}

interface Copy {
  worker: EngineHost;
  loaded: boolean;
  ready: Promise<void>;
  exited: Promise<void>;
  job: Job | null;
  /** Terminate as soon as the job in flight is done. */
  retire: boolean;
  idleTimer: Subscription | null;
}

interface Waiter {
  resolve(copy: Copy): void;
  reject(error: unknown): void;
}

export function defaultThreads(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()));
}

/** whisper.cpp in-process; see the module comment. */
export function createWhisperInProcess(options: WhisperInProcessOptions): Transcriber {
  const scheduler = options.scheduler ?? asyncScheduler;
  const maxCopies = options.maxCopies ?? 1;
  const threads = options.threads ?? defaultThreads();
  const modulePath = createRequire(import.meta.url).resolve('@napi-rs/whisper');
  const copies = new Set<Copy>();
  const waiters: Waiter[] = [];
  let modelSize: number | null = null;
  let nextId = 0;
  /** Busy copies still to drop after their job (from shrinkTo). */
  let excess = 0;

  const terminate = (copy: Copy): Promise<void> => {
    copy.idleTimer?.unsubscribe();
    copy.idleTimer = null;
    copies.delete(copy);
    void copy.worker.terminate().catch(() => undefined);
    return copy.exited;
  };

  const fail = (copy: Copy, error: TranscriberError) => {
    const job = copy.job;
    copy.job = null;
    void terminate(copy);
    job?.reject(error);
  };

  const spawn = (): Copy => {
    // Checked before every load: whisper.cpp refusing a file crashes the process (see ggmlModel.ts).
    modelSize = inspectWhisperModel(options.modelPath).sizeBytes;
    const data: WorkerData = { module: modulePath, modelPath: options.modelPath };
    const worker: EngineHost = options.isolation === 'process' ? startWhisperProcess(data) : new Worker(WHISPER_WORKER_SOURCE, { eval: true, workerData: data });
    let onReady!: () => void;
    let onLoadFailed!: (error: unknown) => void;
    const copy: Copy = {
      worker,
      loaded: false,
      ready: new Promise<void>((resolve, reject) => {
        onReady = resolve;
        onLoadFailed = reject;
      }),
      exited: new Promise<void>((resolve) => worker.on('exit', () => resolve())),
      job: null,
      retire: false,
      idleTimer: null,
    };
    copy.ready.catch(() => undefined);
    worker.on('message', (reply: WorkerReply) => {
      if (reply.type === 'ready') {
        copy.loaded = true;
        onReady();
        return;
      }
      if (reply.type === 'load-failed') {
        const error = new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_MODEL', `whisper model ${options.modelPath}: whisper.cpp could not load it: ${reply.message}`);
        onLoadFailed(error);
        void terminate(copy);
        return;
      }
      const job = copy.job;
      if (!job || job.id !== reply.id) return;
      copy.job = null;
      if (reply.type === 'result') job.resolve({ text: reply.text.trim() });
      else job.reject(new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_FAILED', `whisper: ${job.chunk.source} chunk ${job.chunk.index}: ${reply.message}`));
      release(copy);
    });
    worker.on('error', (error) => {
      onLoadFailed(new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_MODEL', `whisper worker failed while loading ${options.modelPath}: ${error.message}`, { cause: error }));
      fail(copy, new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_FAILED', `whisper worker failed: ${error.message}`, { cause: error }));
    });
    worker.on('exit', (code) => {
      copy.loaded = false;
      copies.delete(copy);
      onLoadFailed(new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_MODEL', `whisper worker exited (code ${code}) while loading ${options.modelPath}`));
      if (copy.job) fail(copy, new TranscriberError('MEMTIDE_ERR_TRANSCRIBER_FAILED', `whisper worker exited (code ${code}) during ${copy.job.chunk.source} chunk ${copy.job.chunk.index}`));
    });
    copies.add(copy);
    return copy;
  };

  /** A copy is free again: drop it, hand it to a waiter, or start its idle timer. */
  const release = (copy: Copy) => {
    copy.worker.unref();
    if (copy.retire || excess > 0) {
      if (!copy.retire) excess -= 1;
      void terminate(copy);
      const waiter = waiters.shift();
      if (waiter) acquireFor(waiter);
      return;
    }
    const waiter = waiters.shift();
    if (waiter) {
      waiter.resolve(copy);
      return;
    }
    copy.idleTimer = scheduler.schedule(() => {
      copy.idleTimer = null;
      if (!copy.job) void terminate(copy);
    }, options.idleUnloadMs);
  };

  const take = (copy: Copy): Copy => {
    copy.idleTimer?.unsubscribe();
    copy.idleTimer = null;
    return copy;
  };

  /** Hands `waiter` an idle copy, a new one, or leaves it queued. */
  const acquireFor = (waiter: Waiter) => {
    const idle = [...copies].find((c) => !c.job && !c.retire && c.idleTimer !== null);
    if (idle) {
      waiter.resolve(take(idle));
      return;
    }
    if (copies.size < maxCopies) {
      try {
        waiter.resolve(spawn());
      } catch (error) {
        waiter.reject(error);
      }
      return;
    }
    excess = 0; // demand is back above what shrinkTo left: keep the copies
    waiters.push(waiter);
  };

  const transcribe = async (chunk: AudioChunk, signal?: AbortSignal): Promise<TranscriptionResult> => {
    if (signal?.aborted) throw abortedError('whisper', chunk);
    const waiter = {} as Waiter;
    const acquired = new Promise<Copy>((resolve, reject) => Object.assign(waiter, { resolve, reject }));
    const onAbort = () => {
      const at = waiters.indexOf(waiter);
      if (at >= 0) waiters.splice(at, 1);
      waiter.reject(abortedError('whisper', chunk));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      acquireFor(waiter);
      const copy = await acquired;
      // Claimed before any await, so no other chunk takes it meanwhile.
      const job: Job = { id: (nextId += 1), chunk, resolve: () => undefined, reject: () => undefined };
      copy.job = job;
      copy.worker.ref(); // an unfinished chunk keeps the process alive
      const done = new Promise<TranscriptionResult>((resolve, reject) => Object.assign(job, { resolve, reject }));
      const aborted = new Promise<never>((_, reject) => {
        if (!signal) return;
        if (signal.aborted) reject(abortedError('whisper', chunk));
        else signal.addEventListener('abort', () => reject(abortedError('whisper', chunk)), { once: true });
      });
      aborted.catch(() => undefined);
      try {
        await Promise.race([copy.ready, aborted]);
        if (signal?.aborted) throw abortedError('whisper', chunk);
      } catch (error) {
        // Load failed or cancelled while loading: the copy is not usable for this chunk.
        if (copy.job === job) {
          copy.job = null;
          if (copy.loaded) release(copy);
          else void terminate(copy);
        }
        throw error;
      }
      const samples = int16ToFloat32(chunk.samples);
      const message: TranscribeMessage = {
        type: 'transcribe',
        id: job.id,
        samples,
        threads,
        language: options.language ?? 'en',
        translate: options.translate ?? false,
        temperature: options.temperature ?? 0,
      };
      copy.worker.postMessage(message, [samples.buffer as ArrayBuffer]);
      // On abort the native call cannot be interrupted: it finishes in the worker, its result is dropped.
      return await Promise.race([done, aborted]);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  };

  return {
    name: 'whisper',
    transcribe,
    unload: async () => {
      const exits: Promise<void>[] = [];
      for (const copy of [...copies]) {
        if (copy.job) {
          copy.retire = true;
          exits.push(copy.exited);
        } else {
          exits.push(terminate(copy));
        }
      }
      await Promise.all(exits);
    },
    shrinkTo: (keep: number) => {
      let over = copies.size - Math.max(0, keep);
      for (const copy of [...copies]) {
        if (over <= 0) break;
        if (!copy.job) {
          void terminate(copy);
          over -= 1;
        }
      }
      excess = Math.max(0, over);
    },
    get loaded() {
      return [...copies].some((c) => c.loaded);
    },
    get modelBytes() {
      const loaded = [...copies].filter((c) => c.loaded).length;
      return loaded > 0 && modelSize !== null ? loaded * modelSize : null;
    },
  };
}
