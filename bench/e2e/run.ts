/**
 * The whole benchmark, callable from the CLI entry (bench/e2e.ts) and the
 * smoke test: build dist/ if stale (the runner runs from it), write the
 * day's audio and the whisper model, bundle the child programs, run the day
 * with Meetily's defaults, then with memtide governing, and report.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureBuilt } from '../../test/setup/build.js';
import { randomTinyModelPath } from '../../test/support/whisperModel.js';
import { writeDayAudio } from './audioFiles.js';
import { bundleChildren, type Bundles } from './bundle.js';
import { stopAll } from './child.js';
import { buildReport, type Outcome } from './report.js';
import { runMode, type ModeResult } from './runMode.js';
import { speechBlocks, type Scenario } from './scenario.js';

export const TARGET_REDUCTION = 0.4;

export interface E2eOptions {
  scenario: Scenario;
  /** Exit code 1 below the 40% target (the full benchmark); the smoke run checks functionality only. */
  checkTarget: boolean;
  log(line: string): void;
  samplingIntervalMs?: number;
}

export interface E2eResult extends Outcome {
  baseline: ModeResult;
  memtide: ModeResult;
  targetMet: boolean;
  exitCode: number;
  /** The report, ending with `peak_reduction=R mean_reduction=R requests_lost=N`. */
  text: string;
}

function audioBytes(scenario: Scenario): number {
  return scenario.steps.reduce((n, step) => {
    if (step.kind === 'meeting') return n + step.audioMinutes * 60 * 16000 * 2;
    if (step.kind === 'import') return n + step.file.minutes * 60 * step.file.sampleRate * step.file.channels * 2;
    return n;
  }, 0);
}

export async function runE2e(options: E2eOptions): Promise<E2eResult> {
  const { scenario, log } = options;
  const samplingIntervalMs = options.samplingIntervalMs ?? 200;
  const loadStart = os.loadavg()[0]!;
  await ensureBuilt();
  const whisperModelPath = randomTinyModelPath();
  const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-bench-e2e-'));
  let bundles: Bundles | null = null;
  try {
    const needed = audioBytes(scenario) * 2;
    const { bavail, bsize } = fs.statfsSync(baseDir);
    if (bavail * bsize < needed) throw new Error(`need ${(needed / 1e9).toFixed(1)} GB free in ${os.tmpdir()}, have ${((bavail * bsize) / 1e9).toFixed(1)} GB`);
    const t0 = performance.now();
    const audio = writeDayAudio(scenario, path.join(baseDir));
    const blocks = scenario.steps.flatMap((step) => (step.kind === 'import' ? speechBlocks(step.file) : [])).length;
    log(`wrote the day's audio (${(audio.bytes / 1e6).toFixed(0)} MB, ${blocks} speech blocks to import) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    bundles = await bundleChildren();
    const inputs = { scenario, bundles, audio, whisperModelPath, baseDir, samplingIntervalMs, log };
    log('run 1/2: Meetily defaults (Ollama direct, whole-file import, unbounded live queue)');
    const baseline = await runMode('baseline', inputs);
    log('run 2/2: memtide governing (proxy + governor, bounded streaming, runner with history and dashboard)');
    const memtide = await runMode('memtide', inputs);
    const outcome = buildReport(scenario, baseline, memtide, { loadStart, whisperModelBytes: fs.statSync(whisperModelPath).size, samplingIntervalMs });
    const targetMet = outcome.peakReduction >= TARGET_REDUCTION && outcome.meanReduction >= TARGET_REDUCTION;
    const whatIf = scenario.governedKvCache ? `WHAT-IF (the governed run's Ollama uses a ${scenario.governedKvCache} KV cache, as memtide recommends; the baseline's f16): ` : '';
    const verdict = whatIf + (!outcome.functional
      ? 'FAIL: functionality (see above)'
      : outcome.requestsLost > 0
        ? `FAIL: ${outcome.requestsLost} request(s) lost`
        : targetMet
          ? `OK: peak ${(outcome.peakReduction * 100).toFixed(0)}% and mean ${(outcome.meanReduction * 100).toFixed(0)}% lower with memtide (target >= ${TARGET_REDUCTION * 100}%), nothing lost`
          : `MISSED: peak ${(outcome.peakReduction * 100).toFixed(0)}%, mean ${(outcome.meanReduction * 100).toFixed(0)}% lower with memtide${Math.min(outcome.peakReduction, outcome.meanReduction) < 0 ? ' (negative: higher)' : ''}; the target is ${TARGET_REDUCTION * 100}% for both`);
    const last = `peak_reduction=${outcome.peakReduction.toFixed(2)} mean_reduction=${outcome.meanReduction.toFixed(2)} requests_lost=${outcome.requestsLost}`;
    const failed = !outcome.functional || outcome.requestsLost > 0 || (options.checkTarget && !targetMet);
    return { ...outcome, baseline, memtide, targetMet, exitCode: failed ? 1 : 0, text: [...outcome.lines, verdict, last].join('\n') };
  } finally {
    await stopAll();
    bundles?.remove();
    fs.rmSync(baseDir, { recursive: true, force: true });
  }
}
