import { Subscription, VirtualAction, VirtualTimeScheduler } from 'rxjs';

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
