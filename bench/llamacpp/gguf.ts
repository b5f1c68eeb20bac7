/**
 * Minimal GGUF v3 writer (enough for llama.cpp to load a model): header,
 * key/value metadata (string, uint32, int32, float32, bool and arrays of
 * those), tensor infos, `general.alignment` padding (32 bytes), tensor data.
 *
 * Tensor data is produced one tensor at a time by a `fill` callback, so a
 * multi-GB file never has to sit in memory at once.
 *
 * Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export const ALIGNMENT = 32;

/** GGUF metadata value types. */
const VT = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9 } as const;

/** ggml tensor types used here, with their block geometry. */
export const GgmlType = {
  F32: { id: 0, blockElems: 1, blockBytes: 4 },
  F16: { id: 1, blockElems: 1, blockBytes: 2 },
  Q4_0: { id: 2, blockElems: 32, blockBytes: 18 },
  Q6_K: { id: 14, blockElems: 256, blockBytes: 210 },
} as const;
export type GgmlTypeName = keyof typeof GgmlType;

export type KvValue =
  | { type: 'string'; value: string }
  | { type: 'uint32'; value: number }
  | { type: 'int32'; value: number }
  | { type: 'float32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'float32[]'; value: Float32Array }
  | { type: 'int32[]'; value: Int32Array };

export interface TensorSpec {
  name: string;
  /** ggml order: dims[0] is the innermost (row length). */
  dims: readonly number[];
  type: GgmlTypeName;
  /** Fills `out` (exactly `tensorBytes(this)` long) with the tensor's data. */
  fill: (out: Buffer) => void;
}

export function tensorBytes(t: Pick<TensorSpec, 'dims' | 'type'>): number {
  const g = GgmlType[t.type];
  const n = t.dims.reduce((a, b) => a * b, 1);
  if ((t.dims[0] ?? 0) % g.blockElems !== 0) throw new Error(`row length ${t.dims[0]} not a multiple of ${g.blockElems} for ${t.type}`);
  return (n / g.blockElems) * g.blockBytes;
}

const align = (n: number): number => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

/** Growable little-endian byte sink for the header/metadata part. */
class Sink {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  raw(b: Buffer): void {
    this.push(b);
  }
  pad(): void {
    const n = align(this.length) - this.length;
    if (n > 0) this.push(Buffer.alloc(n));
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function writeKv(s: Sink, key: string, kv: KvValue): void {
  s.str(key);
  switch (kv.type) {
    case 'string':
      s.u32(VT.STRING);
      s.str(kv.value);
      break;
    case 'uint32':
      s.u32(VT.UINT32);
      s.u32(kv.value);
      break;
    case 'int32':
      s.u32(VT.INT32);
      s.i32(kv.value);
      break;
    case 'float32':
      s.u32(VT.FLOAT32);
      s.f32(kv.value);
      break;
    case 'bool':
      s.u32(VT.BOOL);
      s.raw(Buffer.from([kv.value ? 1 : 0]));
      break;
    case 'string[]':
      s.u32(VT.ARRAY);
      s.u32(VT.STRING);
      s.u64(kv.value.length);
      for (const v of kv.value) s.str(v);
      break;
    case 'float32[]':
      s.u32(VT.ARRAY);
      s.u32(VT.FLOAT32);
      s.u64(kv.value.length);
      s.raw(Buffer.from(kv.value.buffer, kv.value.byteOffset, kv.value.byteLength));
      break;
    case 'int32[]':
      s.u32(VT.ARRAY);
      s.u32(VT.INT32);
      s.u64(kv.value.length);
      s.raw(Buffer.from(kv.value.buffer, kv.value.byteOffset, kv.value.byteLength));
      break;
  }
}

/** Writes a GGUF v3 file; returns its size in bytes. */
export function writeGguf(path: string, kvs: ReadonlyMap<string, KvValue>, tensors: readonly TensorSpec[]): number {
  const head = new Sink();
  head.raw(Buffer.from('GGUF', 'ascii'));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(kvs.size);
  for (const [k, v] of kvs) writeKv(head, k, v);

  let offset = 0;
  for (const t of tensors) {
    head.str(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(GgmlType[t.type].id);
    head.u64(offset);
    offset = align(offset + tensorBytes(t));
  }
  head.pad();

  const fd = openSync(path, 'w');
  try {
    let written = writeAll(fd, head.toBuffer());
    for (const t of tensors) {
      const size = tensorBytes(t);
      const buf = Buffer.allocUnsafe(align(size));
      buf.fill(0, size);
      t.fill(buf.subarray(0, size));
      written += writeAll(fd, buf);
    }
    return written;
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, buf: Buffer): number {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
  return done;
}
