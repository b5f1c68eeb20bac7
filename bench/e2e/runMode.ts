/**
 * One run of the day: start its processes (Ollama; in the memtide run also
 * the memtide runner and the dashboard viewer), sample all of them while the
 * simulated Meetily plays the day, stop everything and collect what each
 * process reports.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { FakeStats } from '../../test/support/fakeOllama.js';
import type { DayAudio } from './audioFiles.js';
import type { Bundles } from './bundle.js';
import { startChild } from './child.js';
import { openDashboard, type DashboardStats, type DashboardViewer } from './dashboardClient.js';
import { startOllama } from './ollamaProcess.js';
import { startProcessSampler, type Root, type SamplerResult } from './processSampler.js';
import type { Mode, SimArgs, SimMessage, SimReport } from './protocol.js';
import { startRunner, type Runner } from './runnerProcess.js';
import type { Scenario } from './scenario.js';

export const COMPONENTS = {
  meetily: 'Meetily (app + whisper)',
  ollama: 'Ollama server',
  model: 'Ollama model runner',
  memtide: 'memtide runner',
} as const;

export interface Phase {
  name: string;
  atMs: number;
}

export interface ModeResult {
  mode: Mode;
  sim: SimReport;
  sampler: SamplerResult;
  phases: Phase[];
  ollamaStats: FakeStats | null;
  dashboard: DashboardStats | null;
  /** Rows memtide's history got (memtide run). */
  history: { systemSamples: number; componentRows: number } | null;
}

export interface RunInputs {
  scenario: Scenario;
  bundles: Bundles;
  audio: DayAudio;
  whisperModelPath: string;
  baseDir: string;
  samplingIntervalMs: number;
  log(line: string): void;
}

function readHistory(dbPath: string): { systemSamples: number; componentRows: number } {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    return { systemSamples: count('SELECT count(*) AS n FROM system_samples'), componentRows: count('SELECT count(*) AS n FROM component_samples') };
  } finally {
    db.close();
  }
}

export async function runMode(mode: Mode, inputs: RunInputs): Promise<ModeResult> {
  const { scenario, log } = inputs;
  const dir = path.join(inputs.baseDir, mode);
  fs.mkdirSync(dir, { recursive: true });
  const ollama = await startOllama(scenario, inputs.bundles.ollama, dir, mode === 'memtide' ? scenario.governedKvCache : undefined);
  const roots: Root[] = [{ pid: ollama.child.pid, component: COMPONENTS.ollama }];
  let runner: Runner | null = null;
  let viewer: DashboardViewer | null = null;
  try {
    if (mode === 'memtide') {
      runner = await startRunner(scenario, dir, ollama.url);
      roots.push({ pid: runner.child.pid, component: COMPONENTS.memtide });
      viewer = await openDashboard(runner.url);
      log(`  memtide runner pid ${runner.child.pid}: dashboard ${runner.url} (open, SSE), proxy ${runner.proxyUrl} -> Ollama ${ollama.url}`);
    }
    const simArgs: SimArgs = {
      mode,
      scenario,
      ollamaUrl: runner?.proxyUrl ?? ollama.url,
      runnerUrl: runner?.url ?? null,
      whisperModelPath: inputs.whisperModelPath,
      micFiles: inputs.audio.micFiles,
      importFiles: inputs.audio.importFiles,
      workDir: dir,
    };
    const argsPath = path.join(dir, 'sim.json');
    fs.writeFileSync(argsPath, JSON.stringify(simArgs));

    const sampler = startProcessSampler(roots, { intervalMs: inputs.samplingIntervalMs, runnerComponent: COMPONENTS.model, runnerPattern: /memtide-fake-runner/ });
    const phases: Phase[] = [];
    const got: { report: SimReport | null; failure: string | null } = { report: null, failure: null };
    const sim = startChild(process.execPath, ['--expose-gc', mode === 'memtide' ? inputs.bundles.memtide : inputs.bundles.baseline, argsPath], {
      cwd: dir,
      onLine: (line) => {
        let message: SimMessage;
        try {
          message = JSON.parse(line) as SimMessage;
        } catch {
          return;
        }
        if (message.type === 'phase') {
          phases.push({ name: message.name, atMs: message.atMs });
          log(`  [${mode} +${((message.atMs - (phases[0]?.atMs ?? message.atMs)) / 1000).toFixed(1)} s] ${message.name}`);
        } else if (message.type === 'report') got.report = message.report;
        else got.failure = message.message;
      },
    });
    sampler.addRoot({ pid: sim.pid, component: COMPONENTS.meetily });
    const exit = await sim.exited;
    const samples = sampler.stop();
    const report = got.report;
    if (got.failure !== null || report === null || exit.code !== 0) {
      throw new Error(`the simulated Meetily (${mode}) failed (exit ${exit.signal ?? exit.code}): ${got.failure ?? 'no report'}\n${sim.stderr().slice(-3000)}`);
    }
    const dashboard = viewer?.close() ?? null;
    viewer = null;
    let history: ModeResult['history'] = null;
    if (runner) {
      await runner.stop();
      history = readHistory(runner.dbPath);
      runner = null;
    }
    const ollamaStats = await ollama.stop();
    return { mode, sim: report, sampler: samples, phases, ollamaStats, dashboard, history };
  } finally {
    viewer?.close();
    await runner?.stop();
    await ollama.child.stop(5000);
  }
}
