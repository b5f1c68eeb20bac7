import { Subject, Subscription, VirtualAction, VirtualTimeScheduler, type OperatorFunction, type SchedulerLike } from 'rxjs';

/**
 * VirtualTimeScheduler nests every rescheduled action inside the previous one
 * (its actions are immutable for inspection), so a 2 s poll over hours builds
 * a chain thousands deep that overflows the stack on unsubscribe. This action
 * reschedules itself in place, like AsyncAction does in real time.
 */
export class FlatVirtualAction<T> extends VirtualAction<T> {
  override schedule(state?: T, delay = 0): Subscription {
    if (!Number.isFinite(delay) || this.closed) return Subscription.EMPTY;
    if (!this.id) return super.schedule(state, delay);
    const actions = this.scheduler.actions;
    const queued = actions.indexOf(this);
    if (queued >= 0) actions.splice(queued, 1);
    this.state = state;
    this.pending = true;
    this.index = this.scheduler.index += 1;
    this.id = this.requestAsyncId(this.scheduler, this.id, delay);
    return this;
  }
}

/** A virtual-time scheduler whose repeating actions reschedule in place. */
export const virtualScheduler = () => new VirtualTimeScheduler(FlatVirtualAction as unknown as typeof VirtualAction);

/** Lets every promise chain settle (the fake API resolves without timers). */
export const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Runs the first scheduled action if it is due by `targetMs`; false when none is. */
function runNextDue(scheduler: VirtualTimeScheduler, targetMs: number): boolean {
  const next = scheduler.actions[0];
  if (!next || next.delay > targetMs) return false;
  scheduler.actions.shift();
  scheduler.frame = next.delay;
  const error: unknown = next.execute(next.state, next.delay);
  if (error) throw error;
  return true;
}

/**
 * Runs the actions due in the next `ms` of virtual time, one at a time in
 * time order, and leaves the clock at now + ms (`flush()` would run every
 * action ever scheduled, periodic ones without end).
 */
export function advance(scheduler: VirtualTimeScheduler, ms: number): void {
  const targetMs = scheduler.now() + ms;
  while (runNextDue(scheduler, targetMs));
  scheduler.frame = targetMs;
}

/**
 * Runs the actions due up to `targetMs` one at a time, letting promise chains
 * settle after each (code that awaits between ticks, like the fake Ollama
 * API, goes on before the next tick), and leaves the clock at `targetMs`.
 */
export async function advanceSettlingTo(scheduler: VirtualTimeScheduler, targetMs: number): Promise<void> {
  while (runNextDue(scheduler, targetMs)) await drain();
  scheduler.frame = targetMs;
}

/** One input of {@link replaySteps}: `gap` virtual ms after the previous one. */
export interface TimedStep<I> {
  gap: number;
  facts: I;
}

/**
 * Feeds `steps` to an operator built on a fresh VirtualTimeScheduler, runs
 * every timer to the end, and returns what it emitted, any error, and when
 * each input was sent (for properties that judge outputs against inputs).
 */
export function replaySteps<I, O>(build: (scheduler: SchedulerLike) => OperatorFunction<I, O>, steps: ReadonlyArray<TimedStep<I>>): { out: O[]; errors: unknown[]; timeline: Array<{ atMs: number; facts: I }> } {
  const scheduler = new VirtualTimeScheduler();
  const source = new Subject<I>();
  const out: O[] = [];
  const errors: unknown[] = [];
  source.pipe(build(scheduler)).subscribe({ next: (value) => out.push(value), error: (error: unknown) => errors.push(error) });
  let t = 0;
  const timeline: Array<{ atMs: number; facts: I }> = [];
  for (const step of steps) {
    t += step.gap;
    timeline.push({ atMs: t, facts: step.facts });
    scheduler.schedule(() => source.next(step.facts), t);
  }
  scheduler.flush();
  return { out, errors, timeline };
}
