/**
 * Threshold presets and the pure evaluation behind `classifyPressure`.
 *
 * Why these numbers (figures in docs/pressure.md, sources in shared/README):
 * the OS-side killers act at earlyoom 10% available (SIGTERM), nohang PSI some
 * 40 for 30 s, systemd-oomd PSI full avg10 > 60% for 30 s, lmkd at PSI some
 * 7% (medium) and full 70% (critical). memtide must act *before* any of them,
 * so every `critical` line sits above earlyoom's 10% and below the PSI lines
 * that kill. Smaller machines get larger fractions because the fixed cost of
 * the desktop, a browser and a model is a larger share of their memory.
 */
import type { LevelThreshold, PresetName, PressureConfig } from '../app/configSchema.js';
import { PRESSURE_LEVELS, levelRank, type PressureLevel, type SystemMemory } from '../model.js';

/** The signals classification reads; a trace replay has only total and available. */
export type PressureSignals = Pick<SystemMemory, 'totalBytes' | 'availableBytes' | 'swapTotalBytes' | 'swapUsedBytes' | 'psi'>;

export type Thresholds = Record<Exclude<PressureLevel, 'low'>, LevelThreshold>;

const PSI = {
  medium: { psiSomeAvg10: 7, psiFullAvg10: null }, // lmkd "medium": some >= 70 ms/s
  high: { psiSomeAvg10: 25, psiFullAvg10: 10 },
  critical: { psiSomeAvg10: 40, psiFullAvg10: 30 }, // nohang acts at some 40; oomd kills at full 60
} as const;

const SWAP = { medium: 60, high: 85, critical: null } as const;

function preset(medium: number, high: number, critical: number): Thresholds {
  return {
    medium: { availablePercent: medium, ...PSI.medium, swapUsedPercent: SWAP.medium },
    high: { availablePercent: high, ...PSI.high, swapUsedPercent: SWAP.high },
    critical: { availablePercent: critical, ...PSI.critical, swapUsedPercent: SWAP.critical },
  };
}

/** Available-memory lines per preset: medium / high / critical, in percent of the effective total. */
export const PRESET_THRESHOLDS: Record<PresetName, Thresholds> = {
  '4gb': preset(35, 22, 14),
  '8gb': preset(30, 18, 12),
  '16gb': preset(20, 14, 11),
};

const GIB = 1024 ** 3;

/** "auto": the preset for the machine's effective total (MemTotal or cgroup limit). */
export function presetFor(totalBytes: number): PresetName {
  if (totalBytes <= 6 * GIB) return '4gb';
  if (totalBytes <= 12 * GIB) return '8gb';
  return '16gb';
}

/** The preset chosen by config (or by size), with the per-level overrides laid on top. */
export function resolveThresholds(config: PressureConfig, totalBytes: number): { preset: PresetName; thresholds: Thresholds } {
  const name = config.preset === 'auto' ? presetFor(totalBytes) : config.preset;
  const base = PRESET_THRESHOLDS[name];
  const over = config.thresholds;
  return {
    preset: name,
    thresholds: {
      medium: { ...base.medium, ...over.medium },
      high: { ...base.high, ...over.high },
      critical: { ...base.critical, ...over.critical },
    },
  };
}

interface SignalValues {
  availablePercent: number;
  psiSomeAvg10: number | null;
  psiFullAvg10: number | null;
  swapUsedPercent: number | null;
}

export function signalValues(signals: PressureSignals): SignalValues {
  return {
    availablePercent: (100 * signals.availableBytes) / signals.totalBytes,
    psiSomeAvg10: signals.psi?.someAvg10 ?? null,
    psiFullAvg10: signals.psi?.fullAvg10 ?? null,
    swapUsedPercent: signals.swapTotalBytes > 0 ? (100 * signals.swapUsedBytes) / signals.swapTotalBytes : null,
  };
}

const fmt = (value: number) => `${Number(value.toFixed(1))}%`;

/**
 * Which signals hold memory at `threshold`. With `margin > 0` this is the
 * "not yet recovered" test: a signal counts until it is past its line by the
 * margin (available above line + margin, PSI and swap below line - margin).
 */
export function crossedSignals(values: SignalValues, threshold: LevelThreshold, margin = 0): string[] {
  const out: string[] = [];
  const { availablePercent, psiSomeAvg10, psiFullAvg10, swapUsedPercent } = threshold;
  if (availablePercent != null && values.availablePercent <= availablePercent + margin) {
    out.push(`available ${fmt(values.availablePercent)} <= ${fmt(availablePercent + margin)}`);
  }
  if (psiSomeAvg10 != null && values.psiSomeAvg10 !== null && values.psiSomeAvg10 >= psiSomeAvg10 - margin) {
    out.push(`psi some avg10 ${fmt(values.psiSomeAvg10)} >= ${fmt(psiSomeAvg10 - margin)}`);
  }
  if (psiFullAvg10 != null && values.psiFullAvg10 !== null && values.psiFullAvg10 >= psiFullAvg10 - margin) {
    out.push(`psi full avg10 ${fmt(values.psiFullAvg10)} >= ${fmt(psiFullAvg10 - margin)}`);
  }
  if (swapUsedPercent != null && values.swapUsedPercent !== null && values.swapUsedPercent >= swapUsedPercent - margin) {
    out.push(`swap used ${fmt(values.swapUsedPercent)} >= ${fmt(swapUsedPercent - margin)}`);
  }
  return out;
}

/**
 * The highest level whose signals are crossed (with `margin`, the highest not
 * yet recovered from), capped at `ceiling`; `low` when none.
 */
export function levelOf(
  values: SignalValues,
  thresholds: Thresholds,
  margin = 0,
  ceiling: PressureLevel = 'critical',
): { level: PressureLevel; reasons: string[] } {
  for (let rank = levelRank(ceiling); rank >= 1; rank -= 1) {
    const level = PRESSURE_LEVELS[rank] as Exclude<PressureLevel, 'low'>;
    const reasons = crossedSignals(values, thresholds[level], margin);
    if (reasons.length > 0) return { level, reasons };
  }
  return { level: 'low', reasons: [] };
}
