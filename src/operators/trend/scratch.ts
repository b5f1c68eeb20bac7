/**
 * Where the arrays of one evaluation come from. An evaluation of a 4-hour
 * window used to allocate some thirty typed arrays (floors, masks, step
 * statistics, decimated spans): allocating and zeroing them, and collecting
 * them afterwards, cost about as much as the arithmetic on them. A component
 * window owns a {@link ScratchArena} and resets it before each evaluation, so
 * in the steady state an evaluation allocates no array memory at all.
 *
 * Rule: nothing taken from an arena may outlive the evaluation it was taken
 * for (a verdict is plain numbers); the next reset hands the memory out again.
 */

/**
 * A source of typed arrays: zero-filled (as `new Float64Array(n)` gives), or
 * `…Unzeroed` with whatever the memory held, for the arrays a computation
 * writes before it reads (most of them: zeroing them was a tenth of the
 * arena's cost).
 */
export interface Alloc {
  float64(n: number): Float64Array;
  int32(n: number): Int32Array;
  uint8(n: number): Uint8Array;
  float64Unzeroed(n: number): Float64Array;
  int32Unzeroed(n: number): Int32Array;
}

/** Fresh arrays every time: the default for callers outside an evaluation (tests, one-off use). */
export const HEAP: Alloc = {
  float64: (n) => new Float64Array(n),
  int32: (n) => new Int32Array(n),
  uint8: (n) => new Uint8Array(n),
  float64Unzeroed: (n) => new Float64Array(n),
  int32Unzeroed: (n) => new Int32Array(n),
};

/**
 * A bump allocator over three growing buffers. An array taken from it is a
 * view into a buffer; when a buffer is full a larger one replaces it (views
 * already handed out keep the old one alive until the reset), so after the
 * first evaluations of a window the buffers are large enough for good.
 */
export class ScratchArena implements Alloc {
  private f64: Float64Array;
  private i32: Int32Array;
  private u8: Uint8Array;
  private f64Used = 0;
  private i32Used = 0;
  private u8Used = 0;

  constructor(initial = 1024) {
    this.f64 = new Float64Array(initial);
    this.i32 = new Int32Array(initial);
    this.u8 = new Uint8Array(initial);
  }

  /** Hands all the memory out again: every array taken since the last reset is dead from here on. */
  reset(): void {
    this.f64Used = 0;
    this.i32Used = 0;
    this.u8Used = 0;
  }

  float64(n: number): Float64Array {
    return this.float64Unzeroed(n).fill(0);
  }

  int32(n: number): Int32Array {
    return this.int32Unzeroed(n).fill(0);
  }

  float64Unzeroed(n: number): Float64Array {
    if (this.f64Used + n > this.f64.length) {
      this.f64 = new Float64Array(Math.max(2 * this.f64.length, 2 * n));
      this.f64Used = 0;
    }
    const out = this.f64.subarray(this.f64Used, this.f64Used + n);
    this.f64Used += n;
    return out;
  }

  int32Unzeroed(n: number): Int32Array {
    if (this.i32Used + n > this.i32.length) {
      this.i32 = new Int32Array(Math.max(2 * this.i32.length, 2 * n));
      this.i32Used = 0;
    }
    const out = this.i32.subarray(this.i32Used, this.i32Used + n);
    this.i32Used += n;
    return out;
  }

  uint8(n: number): Uint8Array {
    if (this.u8Used + n > this.u8.length) {
      this.u8 = new Uint8Array(Math.max(2 * this.u8.length, 2 * n));
      this.u8Used = 0;
    }
    const out = this.u8.subarray(this.u8Used, this.u8Used + n);
    this.u8Used += n;
    return out.fill(0);
  }
}

/**
 * A module's own temporary buffer for a leaf computation (one that returns a
 * number and keeps nothing): grown when too small, never shrunk.
 */
export class Scratch {
  private buffer: Float64Array;

  constructor(initial = 256) {
    this.buffer = new Float64Array(initial);
  }

  /** At least `n` entries (not zeroed: the caller writes what it reads). */
  take(n: number): Float64Array {
    if (this.buffer.length < n) this.buffer = new Float64Array(Math.max(n, 2 * this.buffer.length));
    return this.buffer;
  }
}
