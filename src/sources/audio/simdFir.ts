/**
 * The resampler's hot loop in a few hundred bytes of WebAssembly SIMD: for
 * each output sample, the dot product of one polyphase filter row with the
 * input history (four f32x4 multiply-adds per step instead of one scalar
 * multiply-add), rounded and clipped to Int16, then the phase/index step.
 * Running the whole loop in WebAssembly also saves a JS->wasm call per
 * output. 44.1 kHz -> 16 kHz runs several times faster than the best plain-JS
 * loop (see docs/audio.md), which is what lets a 1 h WAV be converted in a
 * few seconds. Where WebAssembly SIMD is missing, `createSimdFir` returns
 * null and the resampler uses its JS loop (same filter; results equal within
 * float rounding, at most 1 LSB apart).
 *
 * The module, in text form (assembled by hand below; nothing to build):
 *
 * ```wat
 * (module
 *   (memory (export "memory") 1)
 *   ;; count outputs (count >= 1, taps a positive multiple of 16; addresses in bytes)
 *   (func (export "fir") (param $table i32) (param $rowBytes i32) (param $x i32) (param $taps i32)
 *         (param $count i32) (param $up i32) (param $phase i32) (param $stepPhase i32)
 *         (param $stepBytes i32) (param $out i32)
 *     (local $c i32) (local $end i32) (local $xi i32) (local $outEnd i32)
 *     (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
 *     (local.set $outEnd (i32.add (local.get $out) (i32.shl (local.get $count) (i32.const 1))))
 *     (loop $output
 *       (local.set $c (i32.add (local.get $table) (i32.mul (local.get $phase) (local.get $rowBytes))))
 *       (local.set $end (i32.add (local.get $c) (i32.shl (local.get $taps) (i32.const 2))))
 *       (local.set $xi (local.get $x))
 *       (local.set $a0 (v128.const i32x4 0 0 0 0)) ;; and $a1 $a2 $a3
 *       (loop $tap
 *         (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load offset=0 (local.get $c)) (v128.load offset=0 (local.get $xi)))))
 *         ;; the same for $a1 at offset 16, $a2 at 32, $a3 at 48
 *         (local.set $xi (i32.add (local.get $xi) (i32.const 64)))
 *         (br_if $tap (i32.lt_u (local.tee $c (i32.add (local.get $c) (i32.const 64))) (local.get $end))))
 *       ;; out[0] = clip(nearest(32768 * horizontal sum of (a0 + a1) + (a2 + a3)))
 *       (i32.store16 (local.get $out) (i32.trunc_sat_f32_s (f32.min (f32.max (f32.nearest (f32.mul (...sum...) (f32.const 32768))) (f32.const -32768)) (f32.const 32767))))
 *       (local.set $x (i32.add (local.get $x) (local.get $stepBytes)))
 *       (local.set $phase (i32.add (local.get $phase) (local.get $stepPhase)))
 *       (if (i32.ge_u (local.get $phase) (local.get $up))
 *         (then (local.set $phase (i32.sub (local.get $phase) (local.get $up)))
 *               (local.set $x (i32.add (local.get $x) (i32.const 4)))))
 *       (br_if $output (i32.lt_u (local.tee $out (i32.add (local.get $out) (i32.const 2))) (local.get $outEnd))))))
 * ```
 */

const WASM_PAGE = 65536;

/** Unsigned LEB128, the integer encoding of the WebAssembly binary format. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

const I32 = 0x7f;
const V128 = 0x7b;
const op = {
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Const: 0x41,
  f32Const: 0x43,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32Shl: 0x74,
  i32LtU: 0x49,
  i32GeU: 0x4f,
  f32Add: 0x92,
  f32Mul: 0x94,
  f32Min: 0x96,
  f32Max: 0x97,
  f32Nearest: 0x90,
  i32Store16: 0x3b,
  loop: 0x03,
  if: 0x04,
  emptyBlockType: 0x40,
  brIf: 0x0d,
  end: 0x0b,
} as const;
const simd = (code: number) => [0xfd, ...leb(code)];
/** v128.load with 4-byte alignment hint and a constant offset. */
const v128Load = (offset: number) => [...simd(0x00), 2, ...leb(offset)];
const v128Zero = [...simd(0x0c), ...new Array<number>(16).fill(0)];
const f32x4Add = simd(0xe4);
const f32x4Mul = simd(0xe6);
const f32x4ExtractLane = (lane: number) => [...simd(0x1f), lane];
const i32TruncSatF32S = [0xfc, 0x00];
/** i32.const takes signed LEB128: 1, 2, 4 and 64 encode as below. */
const i32Const = (n: 1 | 2 | 4 | 64) => (n === 64 ? [op.i32Const, 0xc0, 0x00] : [op.i32Const, n]);
const f32Const = (x: number) => [op.f32Const, ...new Uint8Array(new Float32Array([x]).buffer)];

function assemble(): Uint8Array<ArrayBuffer> {
  // Parameters, then locals, by index.
  const [TABLE, ROW_BYTES, X, TAPS, COUNT, UP, PHASE, STEP_PHASE, STEP_BYTES, OUT] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const [C, END, XI, OUT_END, A0, A1, A2, A3] = [10, 11, 12, 13, 14, 15, 16, 17];
  const get = (i: number) => [op.localGet, i];
  const set = (i: number) => [op.localSet, i];
  const multiplyAdd = (acc: number, offset: number) => [...get(acc), ...get(C), ...v128Load(offset), ...get(XI), ...v128Load(offset), ...f32x4Mul, ...f32x4Add, ...set(acc)];
  const body = [
    2, 4, I32, 4, V128, // locals: 4 x i32, 4 x v128
    ...get(OUT), ...get(COUNT), ...i32Const(1), op.i32Shl, op.i32Add, ...set(OUT_END),
    op.loop, op.emptyBlockType, // $output
    ...get(TABLE), ...get(PHASE), ...get(ROW_BYTES), op.i32Mul, op.i32Add, ...set(C),
    ...get(C), ...get(TAPS), ...i32Const(2), op.i32Shl, op.i32Add, ...set(END),
    ...get(X), ...set(XI),
    ...v128Zero, ...set(A0), ...v128Zero, ...set(A1), ...v128Zero, ...set(A2), ...v128Zero, ...set(A3),
    op.loop, op.emptyBlockType, // $tap
    ...multiplyAdd(A0, 0), ...multiplyAdd(A1, 16), ...multiplyAdd(A2, 32), ...multiplyAdd(A3, 48),
    ...get(XI), ...i32Const(64), op.i32Add, ...set(XI),
    ...get(C), ...i32Const(64), op.i32Add, op.localTee, C, ...get(END), op.i32LtU, op.brIf, 0,
    op.end, // $tap
    ...get(OUT), // address for the store
    ...get(A0), ...get(A1), ...f32x4Add, ...get(A2), ...get(A3), ...f32x4Add, ...f32x4Add, op.localTee, A0,
    ...f32x4ExtractLane(0), ...get(A0), ...f32x4ExtractLane(1), op.f32Add,
    ...get(A0), ...f32x4ExtractLane(2), ...get(A0), ...f32x4ExtractLane(3), op.f32Add,
    op.f32Add,
    ...f32Const(32768), op.f32Mul, op.f32Nearest,
    ...f32Const(-32768), op.f32Max, ...f32Const(32767), op.f32Min,
    ...i32TruncSatF32S,
    op.i32Store16, 1, 0, // align 2^1, offset 0
    ...get(X), ...get(STEP_BYTES), op.i32Add, ...set(X),
    ...get(PHASE), ...get(STEP_PHASE), op.i32Add, ...set(PHASE),
    ...get(PHASE), ...get(UP), op.i32GeU, op.if, op.emptyBlockType,
    ...get(PHASE), ...get(UP), op.i32Sub, ...set(PHASE),
    ...get(X), ...i32Const(4), op.i32Add, ...set(X),
    op.end, // if
    ...get(OUT), ...i32Const(2), op.i32Add, op.localTee, OUT, ...get(OUT_END), op.i32LtU, op.brIf, 0,
    op.end, // $output
    op.end, // function
  ];
  const name = (text: string) => [text.length, ...Array.from(text, (c) => c.charCodeAt(0))];
  const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, [1, 0x60, 10, ...new Array<number>(10).fill(I32), 0]), // type 0: (i32 x 10) -> ()
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(5, [1, 0x00, 1]), // one memory, 1 page, no maximum
    ...section(7, [2, ...name('memory'), 0x02, 0, ...name('fir'), 0x00, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
}

/**
 * The part of the WebAssembly JS API used here. The project compiles without
 * the DOM lib, where the global's types live; Node has the global itself.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array<ArrayBuffer>): boolean;
  Module: new (bytes: Uint8Array<ArrayBuffer>) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;

function module(): object | null {
  if (compiled !== undefined) return compiled;
  try {
    const bytes = assemble();
    compiled = wasm && wasm.validate(bytes) ? new wasm.Module(bytes) : null;
  } catch {
    compiled = null;
  }
  return compiled;
}

/** Taps must be a positive multiple of this for the kernel. */
export const SIMD_TAPS_MULTIPLE = 16;

/** Where the next outputs start: history byte address and phase, as the resampler tracks them. */
export interface FirStep {
  /** Byte address in the kernel memory of the first history sample the next output reads. */
  xByte: number;
  phase: number;
}

/**
 * One kernel per resampler. Its memory holds the coefficient table at byte
 * 0, then the input history, then room for the outputs of one call.
 * `history` is a view that is replaced when the memory grows: re-read it after
 * {@link SimdFir.reserveHistory}.
 */
export interface SimdFir {
  /** Byte address of history[0]. */
  readonly historyByte: number;
  history: Float32Array;
  /** Makes room for `floats` history samples (keeping the contents). */
  reserveHistory(floats: number): void;
  /**
   * Computes `count` outputs (count >= 1) starting at `xByte`/`phase` (row =
   * phase), each step advancing `stepBytes` (+4 when the phase wraps past `up`);
   * returns a view of them in the kernel's memory, valid until the next call.
   */
  run(taps: number, count: number, up: number, xByte: number, phase: number, stepPhase: number, stepBytes: number): Int16Array;
}

/** A SIMD kernel with `table` copied in, or null where WebAssembly SIMD is not available. */
export function createSimdFir(table: Float32Array, historyFloats: number): SimdFir | null {
  const mod = module();
  if (mod === null) return null;
  const instance = new wasm!.Instance(mod);
  const memory = instance.exports.memory as WasmMemory;
  const fir = instance.exports.fir as (...args: number[]) => void;
  // History starts 16-byte aligned after the table (v128 loads are faster aligned, correct either way).
  const historyByte = Math.ceil((table.length * 4) / 16) * 16;
  const ensure = (bytes: number): void => {
    if (bytes > memory.buffer.byteLength) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / WASM_PAGE));
  };
  ensure(historyByte + historyFloats * 4);
  new Float32Array(memory.buffer, 0, table.length).set(table);
  // Capacity in floats, kept apart from the view: a view of a grown memory's old buffer reads as length 0.
  let capacity = historyFloats;
  const kernel: SimdFir = {
    historyByte,
    history: new Float32Array(memory.buffer, historyByte, capacity),
    reserveHistory(floats: number): void {
      if (floats <= capacity) return;
      capacity = floats;
      ensure(historyByte + capacity * 4);
      kernel.history = new Float32Array(memory.buffer, historyByte, capacity);
    },
    run(taps, count, up, xByte, phase, stepPhase, stepBytes): Int16Array {
      const outByte = historyByte + capacity * 4;
      if (outByte + count * 2 > memory.buffer.byteLength) {
        ensure(outByte + count * 2);
        kernel.history = new Float32Array(memory.buffer, historyByte, capacity);
      }
      fir(0, taps * 4, xByte, taps, count, up, phase, stepPhase, stepBytes, outByte);
      return new Int16Array(memory.buffer, outByte, count);
    },
  };
  return kernel;
}
