/**
 * Starts the day's Ollama (ollamaMain.ts, bundled) with the scenario's model
 * and time scale, and collects its counters when it stops.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FakeStats } from '../../test/support/fakeOllama.js';
import type { FakeKvCacheType } from '../../test/support/fakeOllamaModels.js';
import { startChild, type Child } from './child.js';
import type { OllamaSpec } from './ollamaMain.js';
import { benchMs, type Scenario } from './scenario.js';

export interface OllamaProcess {
  child: Child;
  url: string;
  allocatorPid: number;
  /** Stops the server; its counters (null if it did not print them). */
  stop(): Promise<FakeStats | null>;
}

/** `kvCacheType`: the server's OLLAMA_KV_CACHE_TYPE (the what-if of bench:e2e --kv-cache: memtide's advice applied). */
export async function startOllama(scenario: Scenario, bundle: string, dir: string, kvCacheType?: FakeKvCacheType): Promise<OllamaProcess> {
  const spec: OllamaSpec = {
    models: [scenario.summaryModel],
    timeScale: 1 / scenario.timeScale,
    tokenDelayMs: benchMs(scenario, scenario.answerDayMs) / scenario.answerTokens,
    promptTokenDelayMs: benchMs(scenario, scenario.promptDayMsPerToken),
    loadDelayMs: benchMs(scenario, scenario.loadDayMsPerGb),
    responseTokens: scenario.answerTokens,
    ...(kvCacheType ? { kvCacheType } : {}),
  };
  const specPath = path.join(dir, 'ollama.json');
  fs.writeFileSync(specPath, JSON.stringify(spec));
  const child = startChild(process.execPath, [bundle, specPath], { cwd: dir });
  const match = await child.waitForLine(/^listening (\S+) (\d+)$/, 30_000);
  return {
    child,
    url: match[1]!,
    allocatorPid: Number(match[2]),
    async stop() {
      await child.stop(15_000);
      const line = child.lines.find((l) => l.startsWith('stats '));
      return line ? (JSON.parse(line.slice(6)) as FakeStats) : null;
    },
  };
}
