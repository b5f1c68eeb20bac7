/**
 * `memtide/browser`: memory tools for a web frontend (Meetily's, or any).
 * Browser-only: no Node modules. See docs/dashboard.md for examples.
 */
export {
  AssetCache,
  AssetCacheError,
  estimateBytes,
  releaseAsset,
  type AssetCacheErrorCode,
  type AssetCacheOptions,
  type AssetCacheStats,
  type AssetValue,
  type ObjectUrlAsset,
} from './assetCache.js';
export { createIdleCleanup, requestIdle, type Cancel, type IdleCleanup, type IdleCleanupOptions, type IdleDeadlineLike, type IdleHost } from './idleCleanup.js';
export {
  backoffDelay,
  measurePageMemory,
  MemoryReportError,
  pageMemorySource,
  startMemoryReporter,
  type MemoryReporter,
  type MemoryReporterOptions,
  type PageMemorySample,
  type PageMemorySource,
} from './memorySampler.js';
export {
  computeVirtualRange,
  createVirtualList,
  VirtualListError,
  type VirtualList,
  type VirtualListOptions,
  type VirtualRange,
  type VirtualRangeInput,
} from './virtualList.js';
export { checkRangeSupport, createRangeAudio, RangeAudioError, type RangeAudio, type RangeAudioOptions, type RangeSupport } from './rangeAudio.js';
export { RingBuffer } from './ringBuffer.js';
export { PRESSURE_LEVELS, type LiveComponentUsage, type LiveSample, type LiveSystemMemory, type PressureEvent, type PressureLevel } from './liveTypes.js';
