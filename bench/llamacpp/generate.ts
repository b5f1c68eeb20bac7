/**
 * Writes a random-weight GGUF with the exact shapes of llama3.2:3b.
 *
 *   tsx bench/llamacpp/generate.ts [out.gguf]   (default /tmp/llamabench/llama32-3b-random.gguf)
 *
 * Q4_0 blocks: f16 scale 0.01 + 16 random nibble bytes. Q6_K blocks: random
 * quants/sub-scales + f16 super-scale 0.0002. Norms and rope factors: 1.0.
 * Everything stays small and finite, so no NaN/inf reaches the logits.
 */
import { randomFillSync } from 'node:crypto';
import { GgmlType, tensorBytes, writeGguf, type TensorSpec } from './gguf.js';
import { llama32Metadata, llama32Tensors, type TensorShape } from './llama32Shape.js';

const DEFAULT_OUT = '/tmp/llamabench/llama32-3b-random.gguf';

/** float -> IEEE half bits (normal range only; enough for constants here). */
export function f16Bits(x: number): number {
  const f = new DataView(new ArrayBuffer(4));
  f.setFloat32(0, x);
  const b = f.getUint32(0);
  const sign = (b >>> 16) & 0x8000;
  const exp = ((b >>> 23) & 0xff) - 127 + 15;
  const mant = (b >>> 13) & 0x3ff;
  if (exp <= 0 || exp >= 31) throw new Error(`f16Bits: ${x} out of normal half range`);
  return sign | (exp << 10) | mant;
}

function randomBlocks(out: Buffer, blockBytes: number, scaleOffset: number, scale: number): void {
  randomFillSync(out);
  const bits = f16Bits(scale);
  for (let o = scaleOffset; o < out.length; o += blockBytes) out.writeUInt16LE(bits, o);
}

function filler(t: TensorShape): (out: Buffer) => void {
  switch (t.type) {
    case 'F32':
      return (out) => {
        new Float32Array(out.buffer, out.byteOffset, out.length / 4).fill(1);
      };
    case 'Q4_0': // { f16 d; u8 qs[16] }
      return (out) => randomBlocks(out, GgmlType.Q4_0.blockBytes, 0, 0.01);
    case 'Q6_K': // { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }
      return (out) => randomBlocks(out, GgmlType.Q6_K.blockBytes, 208, 0.0002);
    case 'F16':
      return (out) => out.fill(0);
  }
}

function main(): void {
  const out = process.argv[2] ?? DEFAULT_OUT;
  const shapes = llama32Tensors();
  const tensors: TensorSpec[] = shapes.map((t) => ({ ...t, fill: filler(t) }));
  const dataBytes = tensors.reduce((a, t) => a + tensorBytes(t), 0);
  const t0 = Date.now();
  const size = writeGguf(out, llama32Metadata(), tensors);
  console.log(
    `wrote ${out}: ${(size / 2 ** 20).toFixed(1)} MiB (${tensors.length} tensors, ` +
      `${(dataBytes / 2 ** 20).toFixed(1)} MiB of weights) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}

main();
