/**
 * One side of a coordination decision (Ollama, transcription) that counts as
 * busy while it has work in flight and for `idleAfterMs` after the last of it
 * ends: Meetily sends a summary's chunk requests back to back, and a decision
 * that flipped between two of them would undo itself at once. Shared by
 * `balanceBudgets` and `yieldBatch`; the idle timer runs on their scheduler,
 * so virtual time drives it in marble tests.
 */
import type { SchedulerLike, Subscription } from 'rxjs';

export class BusyTracker {
  /** Work in flight now, or ended less than idleAfterMs ago. */
  busy = false;
  private idleTimer: Subscription | null = null;

  /** `onIdle` runs when the idle timer ends the busy period (not when idleAfterMs is 0: the caller evaluates then). */
  constructor(
    private readonly scheduler: SchedulerLike,
    private readonly onIdle: () => void,
  ) {}

  /**
   * The side's work in flight now. `idleAfterMs` null: no config yet, so a
   * busy side stays busy until a later call with one starts its timer.
   */
  track(inFlight: number, idleAfterMs: number | null): void {
    if (inFlight > 0) {
      this.cancel();
      this.busy = true;
      return;
    }
    if (!this.busy || this.idleTimer || idleAfterMs === null) return;
    if (idleAfterMs === 0) {
      this.busy = false;
      return;
    }
    this.idleTimer = this.scheduler.schedule(() => {
      this.idleTimer = null;
      this.busy = false;
      this.onIdle();
    }, idleAfterMs);
  }

  /** Stops a running idle timer (teardown, or work started again). */
  cancel(): void {
    this.idleTimer?.unsubscribe();
    this.idleTimer = null;
  }
}
