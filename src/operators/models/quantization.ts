/**
 * Quantization choice (seed task 4.2): when several tags of one model are
 * pulled (`llama3.1:8b`, `llama3.1:8b-instruct-q8_0`, `...-fp16`), use the
 * best that fits.
 *
 * Levels, by bits per weight: `none` (F32, F16, BF16), `int8` (>= 6 bits:
 * Q8_0, Q6_K), `int4` (below: Q5_*, Q4_*, Q3_*, Q2_K, IQ*). The config's
 * preference is an upper bound: `none`/`int8`/`int4` cap the level, `auto`
 * caps it at the requested tag's own level, so memtide never swaps a request
 * for a bigger model than the client asked for unless told to.
 */
import type { QuantizationPreference } from '../../app/schema/models.js';
import { BYTES_PER_PARAMETER } from './modelMemory.js';

export type QuantizationLevel = Exclude<QuantizationPreference, 'auto'>;

/** A pulled tag, as `/api/tags` lists it. */
export interface TagInfo {
  name: string;
  /** GGUF file size. */
  sizeBytes: number | null;
  /** `details.quantization_level`. */
  quantization: string | null;
  /** `details.parameter_size`, e.g. `8.0B`. */
  parameterSize: string | null;
}

export interface ParsedTag {
  /** Full name, `:latest` added when there was no tag. */
  name: string;
  /** Before the `:` (`llama3.1`, `library/x`, `hf.co/user/repo`). */
  repo: string;
  /** After the `:` (`8b-instruct-q8_0`). */
  tag: string;
  /** Quantization named by the tag's last `-` part, upper case (`Q8_0`, `Q4_K_M`, `F16`); null when the tag names none. */
  quantization: string | null;
  /** The tag's parts other than the quantization (`['8b', 'instruct']`). */
  parts: string[];
}

const QUANT_PART = /^(fp16|f16|fp32|f32|bf16|q\d(?:_[a-z0-9]+)*|iq\d(?:_[a-z0-9]+)*)$/i;
const SIZE_PART = /^\d+(?:\.\d+)?[bm]$/i;
/** Parts that name the same weights under another alias (`llama3.1:8b` = `llama3.1:8b-instruct-q4_K_M`). */
const ALIAS_PARTS = new Set(['instruct', 'chat', 'it', 'latest']);

/** `x` -> `x:latest`, the way Ollama resolves a name without a tag. */
export function normalizeModelName(name: string): string {
  const last = name.slice(name.lastIndexOf('/') + 1);
  return last.includes(':') ? name : `${name}:latest`;
}

export function parseModelTag(name: string): ParsedTag {
  const full = normalizeModelName(name.trim());
  const colon = full.lastIndexOf(':');
  const repo = full.slice(0, colon);
  const tag = full.slice(colon + 1);
  const parts = tag.split('-').filter((p) => p !== '');
  const last = parts.at(-1);
  if (last !== undefined && parts.length > 1 && QUANT_PART.test(last)) {
    const upper = last.toUpperCase();
    return { name: full, repo, tag, quantization: upper === 'FP16' ? 'F16' : upper === 'FP32' ? 'F32' : upper, parts: parts.slice(0, -1) };
  }
  return { name: full, repo, tag, quantization: null, parts };
}

/** Bits per weight of a quantization name; null when unknown. */
export function bitsPerWeight(quantization: string | null): number | null {
  if (!quantization) return null;
  const q = quantization.toUpperCase();
  const known = BYTES_PER_PARAMETER[q];
  if (known !== undefined) return known * 8;
  const match = /^I?Q(\d)/.exec(q);
  return match ? Number(match[1]) + 0.5 : null;
}

export function quantizationLevel(quantization: string | null): QuantizationLevel | null {
  const bits = bitsPerWeight(quantization);
  if (bits === null) return null;
  if (bits >= 16) return 'none';
  if (bits >= 6) return 'int8';
  return 'int4';
}

const LEVEL_CEILING_BITS: Record<QuantizationLevel, number> = { none: Infinity, int8: 8.5, int4: 5.99 };

/** The quantization of a listed tag: the server's word first, else the tag's suffix. */
export function tagQuantization(tag: TagInfo): string | null {
  return tag.quantization?.toUpperCase() ?? parseModelTag(tag.name).quantization;
}

/**
 * Tags with equal keys are the same weights at different quantizations: same
 * repository, same parameter size (the server's `parameter_size` when
 * listed, else the tag's size part), same other parts (`text`, `qat`,
 * `vision` make a different model).
 */
export function variantKey(tag: TagInfo): string {
  const parsed = parseModelTag(tag.name);
  const sizePart = parsed.parts.find((p) => SIZE_PART.test(p))?.toLowerCase() ?? null;
  const rest = parsed.parts.filter((p) => !SIZE_PART.test(p) && !ALIAS_PARTS.has(p.toLowerCase())).map((p) => p.toLowerCase());
  return [parsed.repo.toLowerCase(), tag.parameterSize?.toUpperCase() ?? sizePart ?? '?', ...rest].join('|');
}

export interface QuantizationChoice {
  /** The tag to use (the requested one when no other fits better or none is listed). */
  model: string;
  quantization: string | null;
  level: QuantizationLevel | null;
  switched: boolean;
  reason: string;
}

export interface ChooseQuantizationInput {
  requested: string;
  /** Every pulled tag (`/api/tags`). */
  tags: readonly TagInfo[];
  preference: QuantizationPreference;
  /** Whether a tag's load fits the memory the caller can give it. */
  fits: (tag: TagInfo) => boolean;
}

/**
 * The highest-precision variant of the requested model at or below the
 * preference that fits; if none fits, the smallest allowed one (the budget
 * then evicts or refuses). Ties in bits go to the requested tag, then by name.
 */
export function chooseQuantization(input: ChooseQuantizationInput): QuantizationChoice {
  const requestedName = normalizeModelName(input.requested);
  const requested = input.tags.find((t) => normalizeModelName(t.name) === requestedName);
  if (!requested) {
    const quantization = parseModelTag(requestedName).quantization;
    return { model: input.requested, quantization, level: quantizationLevel(quantization), switched: false, reason: 'not listed by /api/tags' };
  }
  const key = variantKey(requested);
  const requestedBits = bitsPerWeight(tagQuantization(requested));
  const ceiling = input.preference === 'auto' ? (requestedBits ?? Infinity) : LEVEL_CEILING_BITS[input.preference];
  const variants = input.tags
    .filter((t) => variantKey(t) === key)
    .map((t) => ({ tag: t, bits: bitsPerWeight(tagQuantization(t)) }))
    .filter((v): v is { tag: TagInfo; bits: number } => v.bits !== null || v.tag === requested)
    .map((v) => ({ tag: v.tag, bits: v.bits ?? Infinity }));
  let allowed = variants.filter((v) => v.bits <= ceiling);
  if (allowed.length === 0) allowed = [{ tag: requested, bits: requestedBits ?? Infinity }];
  allowed.sort((a, b) => b.bits - a.bits || Number(b.tag === requested) - Number(a.tag === requested) || a.tag.name.localeCompare(b.tag.name));
  const fitting = allowed.find((v) => input.fits(v.tag));
  const chosen = fitting ?? allowed[allowed.length - 1]!;
  const quantization = tagQuantization(chosen.tag);
  const switched = normalizeModelName(chosen.tag.name) !== requestedName;
  const what = `${quantization ?? 'unknown quantization'} (${input.preference === 'auto' ? 'auto: at most the requested level' : `preference ${input.preference}`})`;
  const reason = fitting
    ? switched
      ? `${chosen.tag.name} is the best variant that fits: ${what}`
      : `requested tag fits: ${what}`
    : `no variant fits; smallest allowed is ${chosen.tag.name}: ${what}`;
  return {
    model: switched ? chosen.tag.name : input.requested,
    quantization,
    level: quantizationLevel(quantization),
    switched,
    reason,
  };
}
