/**
 * A fixed-capacity ring buffer: the newest `capacity` items, oldest first.
 * What a live chart or log view needs so hours of updates hold a constant
 * amount of memory (an array with `push` and an occasional `slice` keeps
 * growing, or copies on every update).
 */
export class RingBuffer<T> {
  private readonly items: Array<T | undefined>;
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0) {
      throw new RangeError(`RingBuffer capacity must be a positive integer, got ${String(capacity)}`);
    }
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.count;
  }

  /** Appends; returns the item that fell out when full. */
  push(item: T): T | undefined {
    const slot = (this.head + this.count) % this.capacity;
    if (this.count < this.capacity) {
      this.items[slot] = item;
      this.count++;
      return undefined;
    }
    const evicted = this.items[this.head];
    this.items[this.head] = item;
    this.head = (this.head + 1) % this.capacity;
    return evicted;
  }

  /** Item `index` counted from the oldest (0), undefined out of range. */
  at(index: number): T | undefined {
    if (index < 0) index += this.count;
    if (index < 0 || index >= this.count) return undefined;
    return this.items[(this.head + index) % this.capacity];
  }

  last(): T | undefined {
    return this.at(-1);
  }

  clear(): void {
    this.items.fill(undefined);
    this.head = 0;
    this.count = 0;
  }

  /** Copies into `target` (reused when given, its length set to `length`), oldest first. */
  toArray(target: T[] = []): T[] {
    target.length = this.count;
    for (let i = 0; i < this.count; i++) target[i] = this.items[(this.head + i) % this.capacity] as T;
    return target;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.count; i++) yield this.items[(this.head + i) % this.capacity] as T;
  }
}
