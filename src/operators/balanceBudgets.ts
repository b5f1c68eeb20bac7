import { asyncScheduler, Observable, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { formatBytes, formatDuration } from '../app/units.js';
import { BusyTracker } from './shared/busyTracker.js';
import { subscribeFactsWithConfig } from './shared/factsWithConfig.js';

/** Options of {@link balanceBudgets}. */
export interface BalanceBudgetsConfig {
  /** `optimization.balanceBudgets`: false lifts every cap. */
  enabled: boolean;
  /** Memory left free between the models and transcription. */
  safetyBytes: number;
  /** Caps are rounded down to a multiple of this, so RSS noise does not move them every sample (> 0). */
  stepBytes: number;
  /** A side counts as idle only after this long without work: Meetily's summary chunks come back to back. */
  idleAfterMs: number;
}

/** What the balance looks at, at one instant. */
export interface BalanceFacts {
  /** Requests to Ollama in flight (through the proxy). */
  ollamaInFlight: number;
  /** Audio chunks being transcribed now. */
  audioInFlight: number;
  /** Bytes transcription holds now (the RSS of the component that runs it). */
  audioBytes: number;
  /** The model budget in force before any cap (config, or preset x budgetScale). */
  budgetBytes: number;
  /** What a model load waiting for the capped budget misses (0: no load waits for it). */
  loadShortfallBytes: number;
  /** Chunks transcribed at once now. */
  transcriptionConcurrency: number;
}

/** Caps to put in force; null lifts one. Emitted when either changes. */
export interface BudgetCaps {
  atMs: number;
  modelBudgetCapBytes: number | null;
  transcriptionConcurrencyCap: number | null;
  reason: string;
}

export class BalanceBudgetsError extends Error {
  readonly code = 'MEMTIDE_ERR_BALANCE_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'BalanceBudgetsError';
  }
}

const FACT_FIELDS = ['ollamaInFlight', 'audioInFlight', 'audioBytes', 'budgetBytes', 'loadShortfallBytes', 'transcriptionConcurrency'] as const;

function validateFacts(facts: BalanceFacts): void {
  for (const field of FACT_FIELDS) {
    const value = facts[field];
    // budgetBytes may be Infinity (no config yet): nothing to cap then.
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (field !== 'budgetBytes' && !Number.isFinite(value))) {
      throw new BalanceBudgetsError(`${field}: expected a number >= 0, got ${String(value)}`);
    }
  }
}

function validateConfig(config: BalanceBudgetsConfig): void {
  if (!(Number.isFinite(config.safetyBytes) && config.safetyBytes >= 0)) throw new BalanceBudgetsError(`safetyBytes: expected bytes >= 0, got ${String(config.safetyBytes)}`);
  if (!(Number.isFinite(config.stepBytes) && config.stepBytes > 0)) throw new BalanceBudgetsError(`stepBytes: expected bytes > 0, got ${String(config.stepBytes)}`);
  if (!(Number.isFinite(config.idleAfterMs) && config.idleAfterMs >= 0)) throw new BalanceBudgetsError(`idleAfterMs: expected a duration >= 0 ms, got ${String(config.idleAfterMs)}`);
}

/** The pure arithmetic: caps for one instant when both sides are busy. `stickyConcurrency` is the cap already in force. */
export function capsFor(facts: BalanceFacts, config: BalanceBudgetsConfig, stickyConcurrency: number | null): Omit<BudgetCaps, 'atMs'> {
  const room = facts.budgetBytes - facts.audioBytes - config.safetyBytes;
  const stepped = Math.max(0, Math.floor(room / config.stepBytes) * config.stepBytes);
  const modelBudgetCapBytes = Number.isFinite(facts.budgetBytes) && stepped < facts.budgetBytes ? stepped : null;
  let concurrency: number | null = null;
  if (facts.loadShortfallBytes > 0 && facts.transcriptionConcurrency > 1) {
    // Transcription memory grows with the chunks at once (one whisper copy each): drop enough of them.
    const perChunk = facts.audioBytes / Math.max(1, facts.audioInFlight);
    const drop = perChunk > 0 ? Math.ceil(facts.loadShortfallBytes / perChunk) : facts.transcriptionConcurrency - 1;
    concurrency = Math.max(1, facts.transcriptionConcurrency - drop);
  }
  // Once lowered, the cap stays until a side goes idle: lifting it when the load got its room would flap.
  const transcriptionConcurrencyCap = stickyConcurrency === null ? concurrency : Math.min(stickyConcurrency, concurrency ?? stickyConcurrency);
  const budget = modelBudgetCapBytes === null ? 'no model budget cap needed' : `model budget capped at ${formatBytes(modelBudgetCapBytes)}`;
  const arithmetic = `${formatBytes(facts.budgetBytes)} - transcription ${formatBytes(facts.audioBytes)} - safety ${formatBytes(config.safetyBytes)}`;
  const audio =
    transcriptionConcurrencyCap === null
      ? ''
      : `; transcription at most ${transcriptionConcurrencyCap} chunk(s) at once${facts.loadShortfallBytes > 0 ? ` (a model load misses ${formatBytes(facts.loadShortfallBytes)})` : ''}`;
  return {
    modelBudgetCapBytes,
    transcriptionConcurrencyCap,
    reason: `Ollama (${facts.ollamaInFlight} request(s)) and transcription (${facts.audioInFlight} chunk(s)) busy at once: ${budget} (${arithmetic})${audio}`,
  };
}

/**
 * Budget balancing between Ollama and transcription. While both are busy
 * (requests in flight and chunks transcribing), the models get a budget cap
 * of `budget - transcription's memory - safetyBytes` (rounded down to
 * `stepBytes`), so together they fit what the models alone were given; when a
 * model load waits because of that cap, transcription concurrency is capped
 * to free about what the load misses (never below one chunk). When either
 * side has been idle for `idleAfterMs`, both caps are lifted (emitted as
 * null). Emits only changes; nothing before the first cap.
 *
 * ```
 * facts:  -o-b----b-s--a------|   o: Ollama busy, b: both busy, s: a load misses room, a: audio idle (idleAfterMs 5)
 * result: ---c------C-------l-|   c: model cap, C: lower model cap + concurrency cap, l: both lifted
 * ```
 *
 * @param config safety margin, step, idle grace and the on/off switch, or an Observable of them (hot).
 * @param scheduler clock for `atMs` and the idle grace.
 */
export function balanceBudgets(
  config: BalanceBudgetsConfig | Observable<BalanceBudgetsConfig>,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<BalanceFacts, BudgetCaps> {
  return (source) =>
    new Observable<BudgetCaps>((subscriber) => {
      let current: BalanceBudgetsConfig | null = null;
      let facts: BalanceFacts | null = null;
      const sides = {
        ollama: new BusyTracker(scheduler, () => evaluate()),
        audio: new BusyTracker(scheduler, () => evaluate()),
      };
      let last: Omit<BudgetCaps, 'atMs'> = { modelBudgetCapBytes: null, transcriptionConcurrencyCap: null, reason: '' };

      const evaluate = () => {
        if (!current || !facts) return;
        let next: Omit<BudgetCaps, 'atMs'>;
        if (current.enabled && sides.ollama.busy && sides.audio.busy) {
          next = capsFor(facts, current, last.transcriptionConcurrencyCap);
        } else {
          const idle = !current.enabled ? 'budget balancing is off' : !sides.ollama.busy ? 'Ollama' : 'transcription';
          const why = current.enabled ? `${idle} idle for ${formatDuration(current.idleAfterMs)}: caps lifted` : `${idle}: caps lifted`;
          next = { modelBudgetCapBytes: null, transcriptionConcurrencyCap: null, reason: why };
        }
        if (next.modelBudgetCapBytes === last.modelBudgetCapBytes && next.transcriptionConcurrencyCap === last.transcriptionConcurrencyCap) return;
        last = next;
        subscriber.next({ atMs: scheduler.now(), ...next });
      };

      const subscription = subscribeFactsWithConfig(subscriber, source, config, {
        validateConfig,
        onConfig: (value) => {
          current = value;
          evaluate();
        },
        validateFacts,
        onFacts: (value) => {
          facts = value;
          sides.ollama.track(value.ollamaInFlight, current?.idleAfterMs ?? null);
          sides.audio.track(value.audioInFlight, current?.idleAfterMs ?? null);
          evaluate();
        },
      });
      return () => {
        subscription.unsubscribe();
        sides.ollama.cancel();
        sides.audio.cancel();
      };
    });
}
