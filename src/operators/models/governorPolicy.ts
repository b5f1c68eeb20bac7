/**
 * Small pure policies of the model governor: the default budget per preset,
 * the keep_alive injected into admitted requests, and the idle settings under
 * a pressure directive. Reasons in docs/governor.md.
 */
import type { PresetName } from '../../app/configSchema.js';
import type { ModelsConfig } from '../../app/schema/models.js';
import type { IdleUnloadConfig } from '../idleUnload.js';
import type { PressureDirective } from '../pressureResponse.js';
import { normalizeModelName } from './quantization.js';

const GIB = 1024 ** 3;

/**
 * `models.budgetBytes: null`: 4gb 1.5 GiB (gemma3:1b at 4k context, 1.4 GiB
 * by the estimate, with room for Meetily and whisper), 8gb 4.5 GiB (gemma3:4b
 * at 4k, 4.3 GiB, or llama3.2:3b; not llama3.1:8b), 16gb the larger of 8 GiB
 * (llama3.1:8b Q4_K_M at 8k context plus a small model) and half the
 * effective memory on bigger machines. Reasons in docs/governor.md.
 */
export function presetBudgetBytes(preset: PresetName, totalBytes: number | null): number {
  switch (preset) {
    case '4gb':
      return 1.5 * GIB;
    case '8gb':
      return 4.5 * GIB;
    case '16gb':
      return Math.max(8 * GIB, totalBytes !== null && totalBytes > 0 ? Math.floor(totalBytes / 2) : 0);
  }
}

/**
 * The model budget in force before any temporary cap: `models.budgetBytes`
 * as written, else the preset's budget scaled by `models.budgetScale` (the
 * optimization levels lower it; an explicit budget is never scaled).
 */
export function modelBudgetBytes(models: Pick<ModelsConfig, 'budgetBytes' | 'budgetScale'>, preset: PresetName, totalBytes: number | null): number {
  if (models.budgetBytes !== null) return models.budgetBytes;
  const scale = Number.isFinite(models.budgetScale) && models.budgetScale > 0 ? Math.min(1, models.budgetScale) : 1;
  return Math.floor(presetBudgetBytes(preset, totalBytes) * scale);
}

/** Ollama's own timer runs this much past ours: a backstop if memtide stops, never the one that fires. */
export const KEEP_ALIVE_BACKSTOP_MS = 30_000;

/**
 * The `keep_alive` to inject: pinned -> -1 (forever); otherwise the model's
 * idle timeout plus a backstop, in seconds (Ollama: a number is seconds). A
 * client asking for less (e.g. 0: unload when done) is left alone: null.
 */
export function keepAliveFor(idleTimeoutMs: number | null, clientKeepAliveMs: number | null): number | null {
  if (idleTimeoutMs === null) return -1;
  const ours = idleTimeoutMs + KEEP_ALIVE_BACKSTOP_MS;
  if (clientKeepAliveMs !== null && clientKeepAliveMs <= ours) return null;
  return Math.ceil(ours / 1000);
}

/**
 * The idle settings in force: the config with names normalised and runtime
 * pins laid over it; under pressure every timeout is capped at
 * `pressureGraceMs`, and at `idle-all` nothing is pinned.
 */
export function effectiveIdleConfig(
  config: ModelsConfig,
  pinOverrides: ReadonlyMap<string, boolean>,
  directive: Pick<PressureDirective, 'evict'> | null,
): IdleUnloadConfig {
  const evict = directive?.evict ?? 'none';
  const cap = (ms: number) => (evict === 'none' ? ms : Math.min(ms, config.pressureGraceMs));
  const perModel: Record<string, { idleTimeoutMs?: number; pinned: boolean }> = {};
  const names = new Set<string>([...Object.keys(config.perModel), ...config.pinned, ...pinOverrides.keys()].map(normalizeModelName));
  for (const name of names) {
    const own = perModelOf(config, name);
    const pinned = isPinned(config, pinOverrides, name) && evict !== 'idle-all';
    perModel[name] = own?.idleTimeoutMs !== undefined ? { idleTimeoutMs: cap(own.idleTimeoutMs), pinned } : { pinned };
  }
  return { idleTimeoutMs: cap(config.idleTimeoutMs), pinned: [], perModel };
}

/** The per-model section of `name` (keys may be written with or without `:latest`). */
export function perModelOf(config: ModelsConfig, name: string): ModelsConfig['perModel'][string] | undefined {
  const wanted = normalizeModelName(name);
  for (const [key, value] of Object.entries(config.perModel)) if (normalizeModelName(key) === wanted) return value;
  return undefined;
}

/** Runtime pin/unpin first, then `perModel.pinned`, then the `pinned` list. */
export function isPinned(config: ModelsConfig, pinOverrides: ReadonlyMap<string, boolean>, name: string): boolean {
  const wanted = normalizeModelName(name);
  const override = pinOverrides.get(wanted);
  if (override !== undefined) return override;
  const own = perModelOf(config, wanted)?.pinned;
  if (own !== undefined) return own;
  return config.pinned.some((p) => normalizeModelName(p) === wanted);
}
