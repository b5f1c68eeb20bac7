/**
 * The real memtide runner of the governed run: `node dist/app/cli.js run
 * --config <tmp>/memtide.json`, with the Ollama proxy on (the simulated
 * Meetily's Ollama URL points at it), history in a temporary SQLite file,
 * the dashboard and API served, and `optimization.level` the scenario's
 * (`aggressive` unless bench:e2e --level says otherwise).
 *
 * The level's profile (src/app/optimizationProfiles.ts) applies as is,
 * except its timers, which are written explicitly, scaled like the rest of
 * the day (e.g. models.idleTimeoutMs 30 s, pressureGraceMs 10 s,
 * transcription.idleUnloadMs 2 min at level aggressive, and
 * optimization.batchYield's 20 s idleAfterMs and 15 min maxHoldMs; see scenario.ts).
 * Sampling, history flushing and the dashboard's update rate stay at their
 * real-time values: their cost is per real second. Component rules name the bench's processes
 * so memtide watches them (reading their PSS) as it would Meetily's and
 * Ollama's.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DEFAULT_COMPONENT_RULES } from '../../src/app/configSchema.js';
import { CLI_PATH } from '../../test/setup/build.js';
import { startChild, type Child } from './child.js';
import { benchMs, type Scenario } from './scenario.js';

export interface Runner {
  child: Child;
  /** Dashboard and API. */
  url: string;
  /** What Meetily's Ollama URL is set to. */
  proxyUrl: string;
  dbPath: string;
  configPath: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function runnerConfig(scenario: Scenario, dir: string, upstream: string, serverPort: number, proxyPort: number): Record<string, unknown> {
  return {
    components: {
      rules: [
        { component: 'ollama', cmdline: 'memtide-e2e-ollama|memtide-fake-runner' },
        { component: 'backend', cmdline: 'memtide-e2e-meetily' },
        ...DEFAULT_COMPONENT_RULES,
      ],
    },
    history: { path: path.join(dir, 'memtide.db') },
    server: { port: serverPort, tokenFile: path.join(dir, 'memtide.token') },
    models: {
      upstream,
      idleTimeoutMs: Math.round(benchMs(scenario, scenario.memtideModelIdleDayMs)),
      pressureGraceMs: Math.round(benchMs(scenario, scenario.memtidePressureGraceDayMs)),
      ...(scenario.governedKvCache ? { kvCacheType: scenario.governedKvCache } : {}),
    },
    proxy: { enabled: true, listen: `127.0.0.1:${proxyPort}` },
    transcription: { idleUnloadMs: Math.round(benchMs(scenario, scenario.memtideWhisperIdleDayMs)) },
    // batchYield.enabled comes from the level's profile; only its timers are scaled here.
    optimization: {
      level: scenario.level,
      batchYield: { idleAfterMs: Math.round(benchMs(scenario, scenario.batchIdleAfterDayMs)), maxHoldMs: Math.round(benchMs(scenario, scenario.batchMaxHoldDayMs)) },
    },
  };
}

export async function startRunner(scenario: Scenario, dir: string, upstream: string): Promise<Runner> {
  const [serverPort, proxyPort] = [await freePort(), await freePort()];
  const configPath = path.join(dir, 'memtide.json');
  fs.writeFileSync(configPath, `${JSON.stringify(runnerConfig(scenario, dir, upstream, serverPort, proxyPort), null, 2)}\n`);
  const child = startChild(process.execPath, [CLI_PATH, 'run', '--config', configPath], { cwd: dir });
  await child.waitForLine(/memtide running/, 60_000);
  return {
    child,
    url: `http://127.0.0.1:${serverPort}`,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    dbPath: path.join(dir, 'memtide.db'),
    configPath,
    stop: () => child.stop(15_000),
  };
}
