/**
 * memtide's public entry: `import { createMemtide } from 'memtide'`.
 * Everything exported here is API; everything else is internal.
 *
 * Start with {@link createMemtide} (the engine: samples, pressure, leaks,
 * alerts, history) and {@link Memtide}. The building blocks it is made of are
 * exported too: the RxJS operators ({@link classifyPressure},
 * {@link leakTrend}, {@link alertConditions}, {@link throttleAlerts},
 * {@link idleUnload}, {@link lruBudget}, {@link contextForMemory},
 * {@link pressureResponse}, {@link chunkAudio}, {@link transcribeBounded}),
 * the model governor and proxy ({@link createModelGovernor},
 * {@link startProxy}), the coordinator that answers pressure across
 * components ({@link createCoordinator}, {@link coordinateActions},
 * {@link yieldBatch}), the
 * history store ({@link HistoryStore}) and the data
 * types of `src/model.ts` ({@link MemorySample}, {@link PressureChange},
 * {@link Alert}, ...).
 *
 * Browser code has its own entries, `memtide/browser` and `memtide/react`
 * (docs/dashboard.md); the guides are in docs/ (docs/user-guide.md first).
 *
 * @packageDocumentation
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
export { historySink, HistorySinkError, isTransientWriteError, type FlushResult, type HistoryRecord } from './sinks/historySink.js';
export type { EngineProblem } from './streams/engine.js';

// Leaks and alerts
export { leakTrend, LeakTrendError, type LeakInput, type LeakReset, type LeakTrendConfig } from './operators/leakTrend.js';
export { alertConditions, AlertInputError, type AlertCondition, type AlertInput, type AlertConditionsConfig } from './operators/alertConditions.js';
export { throttleAlerts, ThrottleAlertsError, type ThrottleAlertsConfig } from './operators/throttleAlerts.js';
export { alertStream, firingAlerts, createAlertSinks, connectAlertSinks } from './streams/alerts.js';
export { memoryAnalysis, leakInputOf, type Analysis, type AnalysisInputs } from './streams/analysis.js';
export { replayTrace, type ReplayResult } from './streams/traceReplay.js';
export { MAX_TRACE_GAP_MS, readTrace, TraceError, type TraceSample } from './sources/traceCsv.js';
export type { AlertSink } from './sinks/alertSink.js';

// Ollama governor and proxy
export { idleUnload, IdleUnloadError } from './operators/idleUnload.js';
export { lruBudget, LruBudgetError } from './operators/lruBudget.js';
export { contextForMemory } from './operators/contextForMemory.js';
export { pressureResponse } from './operators/pressureResponse.js';
export { createModelGovernor, advertisedContextOf, type ModelGovernorHandle, type GovernedModel } from './streams/modelGovernor.js';
export { GovernorError, type ModelGovernor, type Admission, type AdmissionRequest, type GovernorAction, type ContextRun } from './streams/governorApi.js';
export { createOllamaApi, type OllamaApi } from './sources/ollamaApi.js';
export { startProxy, type OpenAiChatMode, type TranslationCounts } from './app/proxy/proxy.js';

// Coordinator: pressure answered across components (docs/coordinator.md)
export {
  coordinateActions,
  ACTION_PLANS,
  planFor,
  CoordinateActionsError,
  type ActionPlan,
  type CoordinateActionsConfig,
  type CoordinatedAction,
  type CoordinatorDecision,
} from './operators/coordinateActions.js';
export { balanceBudgets, BalanceBudgetsError, type BalanceBudgetsConfig, type BalanceFacts, type BudgetCaps } from './operators/balanceBudgets.js';
export { yieldBatch, YieldBatchError, type YieldBatchConfig, type YieldBatchErrorCode, type BatchFacts, type BatchHold } from './operators/yieldBatch.js';
export {
  createCoordinator,
  type ActionEvent,
  type ActionRecord,
  type Actuators,
  type CoordinatorActivity,
  type CoordinatorFeatures,
  type CoordinatorHandle,
  type CoordinatorOptions,
  type CoordinatorProblem,
  type CoordinatorState,
  type ExecutedState,
} from './streams/coordinator.js';
export { coordinatorForMemtide, actuatorsOf, batchFactsOf, recordActions, type CoordinatorParts, type MemtideCoordinator } from './streams/coordinator/forMemtide.js';
export type { ActionEntry, StoredAction, ActionQuery } from './sinks/historyStore.js';
export type { OptionalDeferral, UnloadIdleScope, UnloadIdleResult } from './streams/governorApi.js';

// Audio and transcription
export { audioChunks, audioFrames, pullOnDemand, AudioDecodeError, type AudioInput } from './sources/audio/audioSource.js';
export { chunkAudio, ChunkAudioError, type ChunkAudioConfig } from './operators/chunkAudio.js';
export { transcribeBounded, TranscribeError, type TranscribeBoundedConfig } from './operators/transcribeBounded.js';
export { transcribeFiles, transcribeInput } from './streams/transcription.js';
export { createTranscriber, type Transcriber } from './sources/transcribers/index.js';
export { TranscriberError } from './sources/transcribers/transcriber.js';

// Server
export { startServer, type MemtideServer } from './app/server.js';
