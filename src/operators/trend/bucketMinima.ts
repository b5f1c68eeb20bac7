/**
 * Bucket minima: each bucket of samples is reduced to its floor, the level
 * memory returns to after garbage collection. A GC sawtooth shorter than a
 * bucket disappears; a leak raises every floor. The floor is the second
 * smallest value (the smallest with fewer than three samples) so one bad
 * reading that dips low cannot fake a floor.
 */
import { SortedDiffs } from './noise.js';

/** The floor of the bucket being filled. */
export class BucketFloor {
  startMs = Number.NaN;
  count = 0;
  private lowest = Infinity;
  private second = Infinity;

  /** Starts a new, empty bucket at `startMs`. */
  reset(startMs: number): void {
    this.startMs = startMs;
    this.count = 0;
    this.lowest = Infinity;
    this.second = Infinity;
  }

  add(value: number): void {
    this.count++;
    if (value < this.lowest) {
      this.second = this.lowest;
      this.lowest = value;
    } else if (value < this.second) this.second = value;
  }

  /** Second-smallest value once the bucket holds 3 or more samples, else the smallest; NaN when empty. */
  floor(): number {
    if (this.count === 0) return Number.NaN;
    return this.count >= 3 ? this.second : this.lowest;
  }
}

/**
 * A bounded series of (time, floor) points, oldest first: a ring buffer, so a
 * component's memory cost is fixed by the window, not by how long memtide runs.
 * It keeps the floors' differences in order as they come and go
 * ({@link SortedDiffs}): the noise scale of the window without selecting it
 * anew at every evaluation.
 */
export class FloorRing {
  private times: Float64Array;
  private values: Float64Array;
  private head = 0;
  length = 0;
  readonly diffs: SortedDiffs;

  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.times = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
    this.diffs = new SortedDiffs(capacity);
  }

  /** Appends a point; the oldest one is dropped when full. */
  push(timeMs: number, value: number): void {
    if (this.length === this.capacity) this.dropFirst();
    this.diffs.enter(value, this.length > 0 ? this.valueAt(this.length - 1) : null);
    const at = (this.head + this.length) % this.capacity;
    this.times[at] = timeMs;
    this.values[at] = value;
    this.length++;
  }

  /** Drops the oldest point (there is one). */
  private dropFirst(): void {
    this.diffs.leave(this.values[this.head] as number, this.length > 1 ? this.valueAt(1) : null);
    this.head = (this.head + 1) % this.capacity;
    this.length--;
  }

  timeAt(i: number): number {
    return this.times[(this.head + i) % this.capacity] as number;
  }

  valueAt(i: number): number {
    return this.values[(this.head + i) % this.capacity] as number;
  }

  /** Drops every point older than `timeMs`. */
  dropBefore(timeMs: number): void {
    while (this.length > 0 && (this.times[this.head] as number) < timeMs) this.dropFirst();
  }

  clear(): void {
    this.head = 0;
    this.length = 0;
    this.diffs.clear();
  }

  /** Copies the points into `times`/`values` (which must hold `length` entries), oldest first. */
  copyTo(times: Float64Array, values: Float64Array): number {
    for (let i = 0; i < this.length; i++) {
      const at = (this.head + i) % this.capacity;
      times[i] = this.times[at] as number;
      values[i] = this.values[at] as number;
    }
    return this.length;
  }
}
