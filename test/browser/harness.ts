/**
 * Shared pieces of the browser tests: a real runner (createMemtide in runner
 * mode + startServer with the dashboard and the API route modules, actions
 * log included) in a temp directory, Debian's chromium driven by
 * playwright-core, the browser build (tsc -p tsconfig.browser.json) made when
 * stale, and synthetic history: samples and coordinator actions.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { ComponentUsage, LoadedModel, MemorySample, PressureChange } from '../../src/model.js';
import { HistoryStore, type ActionEntry, type ActionUpdate } from '../../src/sinks/historyStore.js';
import { createMemtide, type CreateMemtideOptions, type Memtide } from '../../src/app/memtide.js';
import type { RouteModule } from '../../src/app/router.js';
import { actionsRoutes } from '../../src/app/routes/actions.js';
import { actionsLogRoutes } from '../../src/app/routes/actionsLog.js';
import { alertsRoutes } from '../../src/app/routes/alerts.js';
import { configRoutes } from '../../src/app/routes/config.js';
import { dashboardRoutes } from '../../src/app/routes/dashboard.js';
import { historyRoutes } from '../../src/app/routes/history.js';
import { readJson, sendJson } from '../../src/app/http.js';
import { startServer, type MemtideServer } from '../../src/app/server.js';
import { silentLogger } from '../../src/sinks/logger.js';
import { actionEntry } from '../support/actions.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CHROMIUM = '/usr/bin/chromium';
export const HAS_CHROMIUM = fs.existsSync(CHROMIUM);
export const SKIP_REASON = `browser tests skipped: ${CHROMIUM} is missing (apt-get install -y chromium; CI installs it in .ci/run)`;

/** The flags from shared/README.md, plus no QUIC and exact heap numbers. */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--enable-precise-memory-info',
];

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith('.ts') ? [full] : [];
  });
}

/**
 * Compiles the kit and the page scripts (tsc -p tsconfig.browser.json) when a
 * compiled file is missing or older than its source (the lead's `npm run build`
 * also does it).
 */
export function ensureBrowserBuild(): void {
  const config = fs.statSync(path.join(REPO_ROOT, 'tsconfig.browser.json')).mtimeMs;
  const stale = ['src/browser', 'src/react', 'src/app/dashboard/client']
    .flatMap((dir) => sourceFiles(path.join(REPO_ROOT, dir)))
    .some((source) => {
      const built = path.join(REPO_ROOT, 'dist', path.relative(path.join(REPO_ROOT, 'src'), source)).replace(/\.ts$/, '.js');
      const builtMs = fs.statSync(built, { throwIfNoEntry: false })?.mtimeMs ?? 0;
      return builtMs < Math.max(config, fs.statSync(source).mtimeMs);
    });
  if (!stale) return;
  execFileSync(process.execPath, [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.browser.json'], { cwd: REPO_ROOT, stdio: 'pipe', timeout: 120_000 });
}

export interface FakeModels {
  module: RouteModule;
  models: LoadedModel[];
  /** Every mutating call: path and the Authorization header it carried. */
  calls: Array<{ path: string; authorization: string | undefined }>;
}

/** `/api/models` as the governor will serve it (list, unload, pin, unpin), recording calls. */
export function fakeModels(models: LoadedModel[]): FakeModels {
  const calls: FakeModels['calls'] = [];
  const module: RouteModule = () => ({
    routes: [
      { method: 'GET', path: '/api/models', handler: (_req, res) => sendJson(res, 200, { models }) },
      ...(['unload', 'pin', 'unpin'] as const).map((action) => ({
        method: 'POST' as const,
        path: `/api/models/:name/${action}`,
        handler: async (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, params: Record<string, string>) => {
          if (req.headers['content-type']) await readJson(req, 1024);
          calls.push({ path: `/api/models/${params.name}/${action}`, authorization: req.headers.authorization });
          const model = models.find((m) => m.name === params.name);
          if (!model) return sendJson(res, 404, { error: `model "${params.name}" is not loaded`, code: 'MEMTIDE_ERR_MODEL_NOT_FOUND' });
          if (action === 'unload') models.splice(models.indexOf(model), 1);
          else model.pinned = action === 'pin';
          sendJson(res, 200, { ok: true, action, model: params.name });
        },
      })),
    ],
  });
  return { module, models, calls };
}

export interface Runner {
  url: string;
  token: string;
  dir: string;
  memtide: Memtide;
  server: MemtideServer;
  close(): Promise<void>;
}

export interface RunnerOptions {
  modules?: RouteModule[];
  /** Config file (watched): tests edit it to force a pressure change. */
  configFile?: string;
  config?: CreateMemtideOptions['config'];
  /** An existing history database. */
  historyPath?: string;
  intervalMs?: number;
}

export async function startRunner(options: RunnerOptions = {}): Promise<Runner> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-browser-'));
  const config = {
    sampling: { intervalMs: options.intervalMs ?? 250 },
    history: { path: options.historyPath ?? path.join(dir, 'memtide.db'), flushIntervalMs: 500 },
    server: { port: 0, tokenFile: path.join(dir, 'memtide.token') },
    ...options.config,
  } as CreateMemtideOptions['config'];
  const memtide = createMemtide({ mode: 'runner', ...(options.configFile ? { configFile: options.configFile } : {}), env: {}, config });
  const server = await startServer({
    memtide,
    logger: silentLogger,
    modules: [dashboardRoutes, configRoutes(), historyRoutes(), alertsRoutes(), actionsRoutes(), actionsLogRoutes(), ...(options.modules ?? [])],
  });
  return {
    url: server.url,
    token: server.token,
    dir,
    memtide,
    server,
    async close() {
      await server.close();
      memtide.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestPage {
  page: Page;
  /** Console errors and uncaught exceptions of the page. */
  errors: string[];
}

export interface Browser {
  context: BrowserContext;
  newPage(): Promise<TestPage>;
  close(): Promise<void>;
}

/** Chromium with a fresh profile (a persistent context: `--user-data-dir` in a temp directory). */
export async function launchBrowser(): Promise<Browser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1360, height: 900 },
  });
  return {
    context,
    async newPage() {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(`${message.text()} @ ${message.location().url}`);
      });
      page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
      return { page, errors };
    },
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------
// Synthetic history: a meeting day at 2 samples a second
// ---------------------------------------------------------------------------

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** One sample of a plausible Meetily day: models loading and unloading, meetings with whisper, a slow leak. */
export function syntheticSample(i: number, atMs: number, stepMs: number): MemorySample {
  const hours = (i * stepMs) / 3_600_000;
  const wave = (period: number, phase = 0) => Math.sin((2 * Math.PI * (hours + phase)) / period);
  const inMeeting = [0.8, 4.5, 9.2].some((start) => hours >= start && hours < start + 1.4);
  const modelLoaded = [1.9, 5.8, 10.5].some((start) => hours >= start && hours < start + 1.1) ? 5.2 * GiB : hours % 3 < 0.5 ? 1.1 * GiB : 0;
  const usage = (rss: number, procs: number): ComponentUsage => ({ rssBytes: Math.round(rss), pssBytes: Math.round(rss * 0.86), pssAnonBytes: Math.round(rss * 0.5), processCount: procs });
  const components: Record<string, ComponentUsage> = {
    ollama: usage(0.25 * GiB + modelLoaded, modelLoaded ? 2 : 1),
    audio: usage(inMeeting ? 1.55 * GiB + 40 * MiB * wave(0.05) : 12 * MiB, inMeeting ? 2 : 1),
    backend: usage(420 * MiB + 30 * MiB * hours + 8 * MiB * wave(0.3), 1),
    frontend: usage(610 * MiB + 60 * MiB * ((hours * 12) % 1), 3),
    other: usage(3.1 * GiB + 200 * MiB * wave(5), 120),
  };
  const totalBytes = 16 * GiB;
  const used = Object.values(components).reduce((sum, c) => sum + c.rssBytes, 0) + 1.2 * GiB;
  const availableBytes = Math.max(0.4 * GiB, Math.round(totalBytes - used));
  return {
    timestampMs: atMs,
    system: {
      totalBytes,
      availableBytes,
      usedBytes: totalBytes - availableBytes,
      swapTotalBytes: 2 * GiB,
      swapUsedBytes: Math.round(Math.max(0, 0.2 * GiB - availableBytes * 0.02)),
      psi: { someAvg10: inMeeting && modelLoaded ? 3.5 : 0.1, someAvg60: 0.1, fullAvg10: 0, fullAvg60: 0 },
      physicalTotalBytes: totalBytes,
      cgroupLimitBytes: null,
    },
    components,
    processes: [],
    self: { pid: 1, rssBytes: 60 * MiB, heapUsedBytes: 20 * MiB, heapTotalBytes: 30 * MiB, externalBytes: 1 * MiB, arrayBuffersBytes: 0, sampleCpuMs: 1.2 },
  };
}

/** Writes `count` synthetic samples ending at `endMs` (and the pressure changes they imply) into a new history file. */
export function fillHistory(file: string, count: number, endMs: number, stepMs = 500): { sinceMs: number; untilMs: number } {
  const store = HistoryStore.open(file);
  const sinceMs = endMs - (count - 1) * stepMs;
  let level: PressureChange['level'] = 'low';
  try {
    for (let start = 0; start < count; start += 5000) {
      const samples: MemorySample[] = [];
      const changes: PressureChange[] = [];
      for (let i = start; i < Math.min(count, start + 5000); i++) {
        const sample = syntheticSample(i, sinceMs + i * stepMs, stepMs);
        const percent = (100 * sample.system.availableBytes) / sample.system.totalBytes;
        const next: PressureChange['level'] = percent <= 25 ? 'high' : percent <= 45 ? 'medium' : 'low';
        if (next !== level) {
          changes.push({ atMs: sample.timestampMs, level: next, previous: level, reasons: [`available ${percent.toFixed(1)}%`] });
          level = next;
        }
        samples.push(sample);
      }
      store.append(samples, changes);
    }
  } finally {
    store.close();
  }
  return { sinceMs, untilMs: endMs + 1 };
}

// ---------------------------------------------------------------------------
// Synthetic actions: what the coordinator and the governor record
// ---------------------------------------------------------------------------

export interface SyntheticAction {
  entry: ActionEntry;
  /** Applied after the insert, as the coordinator's sink does when it measures or undoes. */
  update?: ActionUpdate;
}

/**
 * Four actions of a pressure episode ending at `endMs`, oldest first: the
 * coordinator unloads the idle model (measured: ollama freed 5.2 GiB), caps the
 * model budget (undone later), would have shrunk the backend's caches
 * (observe-only, not executed), and the governor holds a load (not measured yet).
 */
export function syntheticActions(endMs: number): SyntheticAction[] {
  const min = 60_000;
  const gib = (n: number) => Math.round(n * GiB);
  return [
    {
      entry: actionEntry({
        atMs: endMs - 14 * min,
        kind: 'unload-idle-models',
        detail: 'llama3.1:8b (5.2 GiB)',
        reason: 'pressure high: available 21.8% <= 25%',
        componentBytesBefore: gib(5.5),
        availableBytesBefore: gib(3.5),
      }),
      update: { componentBytesAfter: 300 * MiB, availableBytesAfter: gib(8.6), measuredAtMs: endMs - 14 * min + 30_000 },
    },
    {
      entry: actionEntry({
        atMs: endMs - 12 * min,
        kind: 'cap-model-budget',
        detail: '2.0 GiB',
        reason: 'balancing: transcription needs 1.5 GiB while a meeting runs',
        componentBytesBefore: 300 * MiB,
        availableBytesBefore: gib(8.6),
      }),
      update: { componentBytesAfter: 300 * MiB, availableBytesAfter: gib(8.5), measuredAtMs: endMs - 12 * min + 30_000, undoneAtMs: endMs - 4 * min },
    },
    {
      entry: actionEntry({
        atMs: endMs - 6 * min,
        kind: 'shrink-caches',
        level: 'medium',
        target: 'backend',
        executed: false,
        reason: 'pressure medium: available 38.0% <= 45%',
        componentBytesBefore: 482 * MiB,
        availableBytesBefore: gib(6.9),
      }),
      update: { componentBytesAfter: 486 * MiB, availableBytesAfter: gib(6.8), measuredAtMs: endMs - 6 * min + 30_000 },
    },
    {
      entry: actionEntry({
        atMs: endMs - 60_000,
        source: 'governor',
        kind: 'hold',
        detail: 'gemma3:1b (1.1 GiB)',
        reason: 'a load would leave 0.9 GiB available (floor 1.5 GiB)',
        componentBytesBefore: gib(1.3),
        availableBytesBefore: gib(2.4),
      }),
    },
  ];
}

/** Records actions in a history store the way the coordinator's sink does (insert, then update); returns their ids. */
export function recordActions(store: Pick<HistoryStore, 'insertAction' | 'updateAction'>, actions: readonly SyntheticAction[]): number[] {
  return actions.map(({ entry, update }) => {
    const id = store.insertAction(entry);
    if (update) store.updateAction(id, update);
    return id;
  });
}
