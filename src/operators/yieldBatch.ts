import { asyncScheduler, Observable, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';
import { formatBytes, formatDuration } from '../app/units.js';
import { BusyTracker } from './shared/busyTracker.js';
import { subscribeFactsWithConfig } from './shared/factsWithConfig.js';

/** Options of {@link yieldBatch}: the `optimization.batchYield` config section. */
export interface YieldBatchConfig {
  /** `optimization.batchYield.enabled`: false never holds. */
  enabled: boolean;
  /** The model side counts as busy for this long after its last request: Meetily's summary chunks come back to back (>= 0). */
  idleAfterMs: number;
  /** Longest hold in one stretch (> 0); then released until the model side has been idle. */
  maxHoldMs: number;
}

/** What the model side looks like at one instant. */
export interface BatchFacts {
  /** When the facts were read (informational; timers use the scheduler). */
  atMs?: number;
  /** Requests to Ollama in flight (through the proxy). */
  ollamaInFlight: number;
  /** Bytes of the models the governor knows are loaded. */
  residentModelBytes: number;
}

/** Whether batch transcription should wait now, and why. Emitted when `hold` changes. */
export interface BatchHold {
  atMs: number;
  hold: boolean;
  reason: string;
}

export type YieldBatchErrorCode = 'MEMTIDE_ERR_YIELD_BATCH_INPUT' | 'MEMTIDE_ERR_YIELD_BATCH_CONFIG';

export class YieldBatchError extends Error {
  readonly code: YieldBatchErrorCode;
  /** The bad fact or config key. */
  readonly field: string;
  constructor(code: YieldBatchErrorCode, field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'YieldBatchError';
    this.code = code;
    this.field = field;
  }
}

function validateFacts(facts: BatchFacts): void {
  if (typeof facts !== 'object' || facts === null) throw new YieldBatchError('MEMTIDE_ERR_YIELD_BATCH_INPUT', 'facts', `expected an object, got ${String(facts)}`);
  for (const field of ['ollamaInFlight', 'residentModelBytes'] as const) {
    const value: unknown = facts[field];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new YieldBatchError('MEMTIDE_ERR_YIELD_BATCH_INPUT', field, `expected a number >= 0, got ${String(value)}`);
    }
  }
  if (facts.atMs !== undefined && !(typeof facts.atMs === 'number' && Number.isFinite(facts.atMs))) {
    throw new YieldBatchError('MEMTIDE_ERR_YIELD_BATCH_INPUT', 'atMs', `expected a time in ms, got ${String(facts.atMs)}`);
  }
}

function validateConfig(config: YieldBatchConfig): void {
  if (typeof config.enabled !== 'boolean') throw new YieldBatchError('MEMTIDE_ERR_YIELD_BATCH_CONFIG', 'enabled', `expected a boolean, got ${String(config.enabled)}`);
  if (!(Number.isFinite(config.idleAfterMs) && config.idleAfterMs >= 0)) {
    throw new YieldBatchError('MEMTIDE_ERR_YIELD_BATCH_CONFIG', 'idleAfterMs', `expected a duration >= 0 ms, got ${String(config.idleAfterMs)}`);
  }
  if (!(Number.isFinite(config.maxHoldMs) && config.maxHoldMs > 0)) {
    throw new YieldBatchError('MEMTIDE_ERR_YIELD_BATCH_CONFIG', 'maxHoldMs', `expected a duration > 0 ms, got ${String(config.maxHoldMs)}`);
  }
}

/**
 * Batch transcription (imports, re-transcription of files; not live
 * meetings) yields to the summary model. Holds while Ollama has a request in
 * flight, a model is resident, or the last request ended less than
 * `idleAfterMs` ago (summary chunks come back to back); releases when none of
 * that holds, so whisper and the model are never resident at once for
 * deferrable work. A hold never lasts longer than `maxHoldMs` in one stretch:
 * then it is released and stays released until the model side has been idle
 * (a model kept loaded all day must not starve imports). Disabled: never
 * holds. The first facts emit the current state; after that only changes of
 * `hold`.
 *
 * ```
 * facts:  -r-i----------z----|   r: a request in flight, i: none but a model resident, z: nothing (idleAfterMs 3, maxHoldMs 20)
 * result: -h------------l----|   h: hold, l: release (the model was unloaded; the last request ended 11 frames ago)
 * ```
 *
 * @param config the switch, idle grace and hold cap, or an Observable of them (hot).
 * @param scheduler clock for `atMs` and both timers.
 * @throws YieldBatchError (as an error notification) on bad facts (`MEMTIDE_ERR_YIELD_BATCH_INPUT`) or config (`MEMTIDE_ERR_YIELD_BATCH_CONFIG`), naming the field.
 */
export function yieldBatch(config: YieldBatchConfig | Observable<YieldBatchConfig>, scheduler: SchedulerLike = asyncScheduler): OperatorFunction<BatchFacts, BatchHold> {
  return (source) =>
    new Observable<BatchHold>((subscriber) => {
      let current: YieldBatchConfig | null = null;
      let facts: BatchFacts | null = null;
      /** A request ended less than idleAfterMs ago (or one is in flight). */
      // Busy while requests are in flight and for idleAfterMs after the last one ends.
      const requests = new BusyTracker(scheduler, () => evaluate());
      /** The hold hit maxHoldMs: released until the model side is idle. */
      let capped = false;
      let holdSince: number | null = null;
      let capTimer: Subscription | null = null;
      let last: BatchHold | null = null;

      const stopCapTimer = () => {
        capTimer?.unsubscribe();
        capTimer = null;
      };
      const armCapTimer = () => {
        stopCapTimer();
        if (!current || holdSince === null) return;
        const left = Math.max(0, holdSince + current.maxHoldMs - scheduler.now());
        capTimer = scheduler.schedule(() => {
          capTimer = null;
          capped = true;
          evaluate();
        }, left);
      };

      const decide = (c: YieldBatchConfig, f: BatchFacts): Omit<BatchHold, 'atMs'> => {
        if (!c.enabled) return { hold: false, reason: 'batch yield is off (optimization.batchYield.enabled false): batch transcription runs' };
        const busy = f.ollamaInFlight > 0 || f.residentModelBytes > 0 || requests.busy;
        if (!busy) {
          capped = false;
          return { hold: false, reason: `Ollama idle for ${formatDuration(c.idleAfterMs)} and no model resident: batch transcription runs` };
        }
        if (capped) {
          return {
            hold: false,
            reason: `batch transcription held for ${formatDuration(c.maxHoldMs)} (optimization.batchYield.maxHoldMs): it runs until the models have been idle, even next to them`,
          };
        }
        if (f.ollamaInFlight > 0) return { hold: true, reason: `Ollama busy (${f.ollamaInFlight} request(s) in flight): batch transcription waits` };
        if (f.residentModelBytes > 0) return { hold: true, reason: `${formatBytes(f.residentModelBytes)} of models resident: batch transcription waits until they are unloaded` };
        return { hold: true, reason: `last Ollama request less than ${formatDuration(c.idleAfterMs)} ago (summary chunks come back to back): batch transcription waits` };
      };

      function evaluate(): void {
        if (!current || !facts) return;
        const next = decide(current, facts);
        if (next.hold && holdSince === null) {
          holdSince = scheduler.now();
          armCapTimer();
        } else if (!next.hold && holdSince !== null) {
          holdSince = null;
          stopCapTimer();
        }
        if (last && last.hold === next.hold) return;
        last = { atMs: scheduler.now(), ...next };
        subscriber.next(last);
      }

      const subscription = subscribeFactsWithConfig(subscriber, source, config, {
        validateConfig,
        onConfig: (value) => {
          const switchedOff = current?.enabled === true && !value.enabled;
          current = value;
          // Off and on again starts afresh: no cap carried over.
          if (switchedOff) capped = false;
          // A new maxHoldMs applies to the hold in force too.
          if (holdSince !== null) armCapTimer();
          // Facts that came before the first config may have left a request's idle grace without its timer.
          if (facts) requests.track(facts.ollamaInFlight, value.idleAfterMs);
          evaluate();
        },
        validateFacts,
        onFacts: (value) => {
          facts = value;
          requests.track(value.ollamaInFlight, current?.idleAfterMs ?? null);
          evaluate();
        },
      });
      return () => {
        subscription.unsubscribe();
        requests.cancel();
        stopCapTimer();
      };
    });
}
