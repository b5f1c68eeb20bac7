/**
 * The Ollama of the meeting day, as its own process (bundled to plain JS):
 * the faithful fake server (test/support/fakeOllama.ts: keep_alive 5 min by
 * default, /v1 ignoring keep_alive and options, Ollama's scheduler and
 * eviction) with every loaded runner's bytes really allocated in a child
 * process (test/support/realMemoryAllocator.ts) and freed on unload.
 *
 *   node memtide-e2e-ollama.mjs SPEC.json
 *
 * SPEC: { models, timeScale, tokenDelayMs, promptTokenDelayMs, loadDelayMs, responseTokens, kvCacheType? }.
 * Prints `listening URL ALLOCATOR_PID` once it serves; on SIGTERM prints
 * `stats {...}` (loads, unloads, requests...) and exits 0.
 */
import { readFileSync } from 'node:fs';
import { startFakeOllama, type FakeModelSpec } from '../../test/support/fakeOllama.js';
import type { FakeKvCacheType } from '../../test/support/fakeOllamaModels.js';
import { startRealMemoryAllocator } from '../../test/support/realMemoryAllocator.js';

export interface OllamaSpec {
  models: FakeModelSpec[];
  /** Multiplies keep_alive timers (1/60: 5 min -> 5 s). */
  timeScale: number;
  tokenDelayMs: number;
  /** Real ms per prompt token at num_batch 512. */
  promptTokenDelayMs: number;
  /** Real ms of load time per GB, on top of the real allocation. */
  loadDelayMs: number;
  responseTokens: number;
  /** OLLAMA_KV_CACHE_TYPE (default f16). */
  kvCacheType?: FakeKvCacheType;
}

process.title = 'memtide-e2e-ollama';

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as OllamaSpec;
  const allocator = startRealMemoryAllocator();
  const fake = await startFakeOllama({
    models: spec.models,
    timeScale: spec.timeScale,
    tokenDelayMs: spec.tokenDelayMs,
    promptTokenDelayMs: spec.promptTokenDelayMs,
    loadDelayMs: spec.loadDelayMs,
    responseTokens: spec.responseTokens,
    ...(spec.kvCacheType ? { kvCacheType: spec.kvCacheType } : {}),
    allocator,
  });
  process.stdout.write(`listening ${fake.url} ${allocator.pid}\n`);
  process.once('SIGTERM', () => {
    void (async () => {
      process.stdout.write(`stats ${JSON.stringify(fake.stats)}\n`);
      await fake.close();
      await allocator.close();
      process.exit(0);
    })();
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`memtide-e2e-ollama: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(2);
});
