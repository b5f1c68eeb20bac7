/** What each coordinator action acts on, and the fixed numbers behind it (reasons in docs/coordinator.md). */
import type { MemtideConfig } from '../../app/config.js';
import type { CoordinatedAction } from '../../operators/coordinateActions.js';

/** Chunks at once while `lower-transcription-concurrency` is in force: one whisper model copy. */
export const LOWERED_TRANSCRIPTION_CONCURRENCY = 1;
/** Budget caps move in steps of this (RSS noise would move them every sample). */
export const BALANCE_STEP_BYTES = 64 * 1024 ** 2;
/** A side counts as idle after this long without work: Meetily's summary chunks come back to back. */
export const BALANCE_IDLE_AFTER_MS = 10_000;

/** Components each action works on: in-process whisper runs in the engine's own process. */
export function targetsOf(config: MemtideConfig) {
  const engine = config.components.engine;
  const transcription = config.transcription.transcriber === 'whisper' ? engine : 'audio';
  return { models: 'ollama', transcription, caches: engine, liveSummaries: 'ollama' } as const;
}

/** The `detail` of the `hold-batch` and `resume-batch` records: what the batch hold holds. */
export const BATCH_DETAIL = 'batch transcription (imports, re-transcription of files)';

/** The `detail` of each action's record. */
export const DETAILS: Readonly<Record<CoordinatedAction, string>> = {
  'unload-idle-models': 'idle unpinned models',
  'lower-transcription-concurrency': `at most ${LOWERED_TRANSCRIPTION_CONCURRENCY} chunk at a time`,
  'shrink-caches': 'caches to their small budget',
  'disable-live-summaries': 'optional requests (X-Memtide-Priority: optional) deferred with 503',
};
