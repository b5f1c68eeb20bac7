/**
 * memtide's public entry: `import { createMemtide } from 'memtide'`.
 * Everything exported here is API; everything else is internal.
 */
export { createMemtide, type CreateMemtideOptions, type Memtide } from './app/memtide.js';
export {
  ConfigError,
  loadConfig,
  type ConfigIssue,
  type LoadConfigOptions,
  type MemtideConfig,
  type MemtideConfigInput,
} from './app/config.js';
export { configSchema, PRESETS, type ComponentRule, type PresetName, type PressureConfig } from './app/configSchema.js';
export { parseBytes, parseDuration, formatBytes, formatDuration } from './app/units.js';
export * from './model.js';
export { classifyPressure, PressureError, type ClassifyPressureConfig } from './operators/classifyPressure.js';
export { PRESET_THRESHOLDS, presetFor, resolveThresholds, type PressureSignals, type Thresholds } from './operators/pressureThresholds.js';
export { attributeComponents, knownComponents, type ProcessIdentity } from './sources/attributeComponents.js';
export { createSampler, type Sampler } from './sources/memorySampler.js';
export { createPlatformReaders, type PlatformReaders, type RawProcess } from './sources/readers.js';
export { HistoryStore, HistoryError, type HistoryStoreConfig } from './sinks/historyStore.js';
export { historySink, type FlushResult, type HistoryRecord } from './sinks/historySink.js';
export type { EngineProblem } from './streams/engine.js';
