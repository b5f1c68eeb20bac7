/** Config section `transcription`: Transcription: engine, model, concurrency, queue. */
import { z } from 'zod';
import { bytes, duration } from '../schemaTypes.js';

export const TRANSCRIBERS = ['whisper', 'server', 'none'] as const;
export type TranscriberKind = (typeof TRANSCRIBERS)[number];

export const transcriptionSchema = z
  .strictObject({
    transcriber: z
      .enum(TRANSCRIBERS)
      .default('whisper')
      .describe(
        'Engine: "whisper" runs whisper.cpp in this process (@napi-rs/whisper, on worker threads); "server" posts chunks to a whisper.cpp whisper-server; "none" decodes and chunks only (dry run, empty text).',
      ),
    modelPath: z
      .string()
      .min(1)
      .nullable()
      .default(null)
      .describe('whisper.cpp ggml model file (e.g. ggml-base.en.bin) for transcriber "whisper"; required for it. Loaded on the first chunk, not at start.'),
    serverUrl: z
      .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
      .default('http://127.0.0.1:8178')
      .describe('Base URL of whisper-server for transcriber "server"; chunks go to POST <serverUrl>/inference (Meetily runs it on port 8178).'),
    follow: z
      .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
      .nullable()
      .default(null)
      .describe(
        '`memtide transcribe` only (flag --follow): base URL of a running `memtide run` (e.g. http://127.0.0.1:7071) whose batch hold the command follows: while its `batch` event on /api/events says hold, no new chunk starts. null: not followed. Unreachable runner: not held, retried in the background.',
      ),
    threads: z
      .number()
      .int()
      .min(1)
      .max(256)
      .nullable()
      .default(null)
      .describe('CPU threads per whisper.cpp model copy; null: the available cores, at most 4.'),
    language: z
      .string()
      .regex(/^([a-z]{2,3}|auto)$/, 'a language code such as "en" or "de", or "auto"')
      .default('en')
      .describe('Spoken language ("auto" detects it; needs a multilingual model). Sent to whisper-server as `language` too.'),
    translate: z.boolean().default(false).describe('Translate to English instead of transcribing (multilingual models only).'),
    temperature: z.number().min(0).max(1).default(0).describe('Decoding temperature (0: greedy); whisper.cpp raises it by itself when a decode fails.'),
    maxConcurrent: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(1)
      .describe(
        'Chunks transcribed at once when memory pressure is low or medium. Transcriber "whisper" loads one model copy per concurrent chunk (memory and cores multiply), so 1 suits 2-core machines.',
      ),
    maxQueuedChunks: z
      .number()
      .int()
      .min(1)
      .max(1024)
      .default(2)
      .describe(
        'Chunks decoded ahead and waiting for a free transcriber; the file read pauses while the queue is full (a 30 s chunk is 480 000 samples, 960 KB).',
      ),
    highConcurrency: z
      .number()
      .int()
      .min(1)
      .max(64)
      .nullable()
      .default(null)
      .describe('Chunks at once while pressure is high; null: half of maxConcurrent, at least 1.'),
    criticalConcurrency: z
      .number()
      .int()
      .min(0)
      .max(1)
      .default(0)
      .describe('Chunks at once while pressure is critical: 0 pauses transcription (in-flight chunks finish; the model is unloaded once idle), 1 keeps one going.'),
    childProcess: z
      .boolean()
      .default(false)
      .describe(
        'Transcriber "whisper": run each model copy in a child process of its own (memtide-whisper) instead of a worker thread. An unload then ends the process and returns every byte (a thread\'s freed memory partly stays in the C allocator of this process: 100-200 MB measured in bench:e2e), and a crash inside whisper.cpp fails one chunk instead of ending this process. Costs a node start per load (~40 MB, ~0.1 s) and a copy of each chunk over IPC.',
      ),
    idleUnloadMs: duration('Unload the in-process model after this long without a chunk; it is loaded again on the next one.').prefault('5m'),
    requestTimeoutMs: duration('Longest wait for whisper-server to answer one chunk before the chunk fails.').prefault('2m'),
    uploadLimitBytes: bytes('Largest audio upload accepted by POST /v1/transcribe; the server answers 413 as soon as an upload passes it.').prefault('1GiB'),
  })
  .superRefine((t, ctx) => {
    if (t.highConcurrency !== null && t.highConcurrency > t.maxConcurrent) {
      ctx.addIssue({
        code: 'custom',
        path: ['highConcurrency'],
        message: `${t.highConcurrency} is more than transcription.maxConcurrent (${t.maxConcurrent}): high pressure must not allow more work than low pressure`,
      });
    }
  })
  .describe('Transcription: engine, model, concurrency, queue.')
  .prefault({});
export type TranscriptionConfig = z.output<typeof transcriptionSchema>;
