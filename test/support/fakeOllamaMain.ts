/**
 * The fake Ollama as a standalone process, for end-to-end benchmarks:
 *
 *   npx tsx test/support/fakeOllamaMain.ts [--port 11434] [--host 127.0.0.1]
 *     [--models spec.json] [--memory 16GiB] [--real-memory] [--time-scale 1]
 *     [--token-delay-ms 0] [--prompt-token-delay-ms 0] [--load-delay-ms 0] [--max-loaded 3] [--num-parallel 1]
 *
 * Prints one line `fake-ollama listening on URL` on stdout once it serves.
 * `--models` is a JSON array of FakeModelSpec (or `{ "models": [...] }`);
 * without it, DEFAULT_FAKE_MODELS. `--real-memory` backs every loaded runner
 * with real bytes in a child process (realMemoryAllocator.ts). SIGINT/SIGTERM
 * close it and exit 0.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseBytes } from '../../src/app/units.js';
import { startFakeOllama, type FakeModelSpec } from './fakeOllama.js';
import { startRealMemoryAllocator, type RealMemoryAllocator } from './realMemoryAllocator.js';

function fail(message: string): never {
  process.stderr.write(`fake-ollama: ${message}\n`);
  process.exit(2);
}

function numberFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) fail(`--${name}: expected a non-negative number, got "${value}"`);
  return parsed;
}

function readModels(path: string): FakeModelSpec[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    fail(`--models ${path}: ${(error as Error).message}`);
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { models?: unknown }).models;
  if (!Array.isArray(list)) fail(`--models ${path}: expected an array of model specs or { "models": [...] }`);
  list.forEach((spec, index) => {
    for (const key of ['name', 'arch', 'parameterCount', 'quantization', 'blockCount', 'headCount', 'headCountKv', 'embeddingLength', 'contextLength', 'fileSizeBytes']) {
      if (typeof spec !== 'object' || spec === null || !(key in spec)) fail(`--models ${path}: models[${index}].${key} is missing`);
    }
  });
  return list as FakeModelSpec[];
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        models: { type: 'string' },
        memory: { type: 'string' },
        'real-memory': { type: 'boolean' },
        'time-scale': { type: 'string' },
        'token-delay-ms': { type: 'string' },
        'prompt-token-delay-ms': { type: 'string' },
        'load-delay-ms': { type: 'string' },
        'max-loaded': { type: 'string' },
        'num-parallel': { type: 'string' },
      },
      strict: true,
    }));
  } catch (error) {
    fail((error as Error).message);
  }
  const memoryBytes = values.memory === undefined ? undefined : (parseBytes(values.memory) ?? fail(`--memory: not a size: "${values.memory}"`));
  const allocator: RealMemoryAllocator | undefined = values['real-memory'] ? startRealMemoryAllocator() : undefined;
  const optional = <K extends string, V>(key: K, value: V | undefined) => (value === undefined ? {} : ({ [key]: value } as Record<K, V>));
  const fake = await startFakeOllama({
    host: values.host ?? '127.0.0.1',
    port: numberFlag('port', values.port) ?? 0,
    ...(values.models ? { models: readModels(values.models) } : {}),
    ...optional('memoryBytes', memoryBytes),
    ...optional('timeScale', numberFlag('time-scale', values['time-scale'])),
    ...optional('tokenDelayMs', numberFlag('token-delay-ms', values['token-delay-ms'])),
    ...optional('promptTokenDelayMs', numberFlag('prompt-token-delay-ms', values['prompt-token-delay-ms'])),
    ...optional('loadDelayMs', numberFlag('load-delay-ms', values['load-delay-ms'])),
    ...optional('maxLoadedModels', numberFlag('max-loaded', values['max-loaded'])),
    ...optional('numParallel', numberFlag('num-parallel', values['num-parallel'])),
    ...(allocator ? { allocator } : {}),
  });
  process.stdout.write(`fake-ollama listening on ${fake.url}${allocator ? ` (real memory in pid ${allocator.pid})` : ''}\n`);
  const stop = () => {
    void (async () => {
      await fake.close();
      await allocator?.close();
      process.exit(0);
    })();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => fail(String(error)));
