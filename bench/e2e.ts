/**
 * `npm run bench:e2e` (= `tsx bench/e2e.ts`): the meeting-day benchmark.
 *
 * A scripted day of meetings (bench/e2e/scenario.ts) runs twice, with real
 * processes, and every process of each run is measured (PSS, several times a
 * second):
 *
 * 1. Meetily's defaults: a simulated Meetily (its own process; whisper.cpp
 *    in process on a generated random-weight model, SQLite history) calls
 *    the Ollama-API test server directly; Ollama keeps a model 5 minutes
 *    after its last request (and its model memory is really allocated);
 *    live chunks wait in an unbounded in-memory queue; an imported
 *    recording is decoded whole.
 * 2. memtide governing: the same day, the simulated Meetily's Ollama URL
 *    pointing at the real memtide runner's proxy (`memtide run`, from
 *    dist/, optimization level aggressive by default, history in SQLite, dashboard open
 *    over SSE), its transcription through memtide's bounded streaming
 *    pipeline. The runner's own memory counts.
 *
 * Prints per-component and total memory (peak and time-weighted mean), the
 * reductions, every functionality check, and as its last line
 * `peak_reduction=R mean_reduction=R requests_lost=N`. Exits 1 if either
 * reduction is below 40%, a request was lost, or a transcript or summary is
 * missing. Flags: `--smoke` runs the seconds-long day of the smoke test
 * (no target check); `--idle-timeout DURATION` (day time, e.g. `15s`) sets
 * memtide's models.idleTimeoutMs instead of level aggressive's 30 s, for
 * what-if runs (the report's timer line shows the value used);
 * `--level maximum` runs memtide at optimization level maximum instead of
 * aggressive (its profile's timers, scaled); `--kv-cache q8_0` is a what-if:
 * the governed run's Ollama runs with OLLAMA_KV_CACHE_TYPE=q8_0 (memtide's
 * recommendation applied by the user; the baseline stays f16, as Ollama
 * ships); `--samples FILE` writes both runs' memory samples and phases as JSON, to
 * see what was in memory when.
 */
import { writeFileSync } from 'node:fs';
import { runE2e } from './e2e/run.js';
import { stopAll } from './e2e/child.js';
import { parseDuration } from '../src/app/units.js';
import { atLevel, MEETING_DAY, SMOKE_DAY, type Scenario } from './e2e/scenario.js';

const smoke = process.argv.includes('--smoke');
const idleFlag = process.argv.indexOf('--idle-timeout');
const idleMs = idleFlag >= 0 ? parseDuration(process.argv[idleFlag + 1] ?? '') : undefined;
if (idleMs === null) {
  console.error(`--idle-timeout: not a duration: "${process.argv[idleFlag + 1] ?? ''}" (e.g. 15s, 1m)`);
  process.exit(2);
}
const samplesFlag = process.argv.indexOf('--samples');
const samplesFile = samplesFlag >= 0 ? process.argv[samplesFlag + 1] : undefined;
if (samplesFlag >= 0 && (samplesFile === undefined || samplesFile.startsWith('--'))) {
  console.error('--samples: expected a file name');
  process.exit(2);
}
const levelFlag = process.argv.indexOf('--level');
const level = levelFlag >= 0 ? process.argv[levelFlag + 1] : 'aggressive';
if (level !== 'aggressive' && level !== 'maximum') {
  console.error(`--level: expected aggressive or maximum, got "${level ?? ''}"`);
  process.exit(2);
}
const kvFlag = process.argv.indexOf('--kv-cache');
const kvCache = kvFlag >= 0 ? process.argv[kvFlag + 1] : undefined;
if (kvFlag >= 0 && kvCache !== 'q8_0') {
  console.error(`--kv-cache: expected q8_0, got "${kvCache ?? ''}"`);
  process.exit(2);
}
const leveled = atLevel(smoke ? SMOKE_DAY : MEETING_DAY, level);
const base: Scenario = kvCache === 'q8_0' ? { ...leveled, governedKvCache: 'q8_0' } : leveled;
const scenario = idleMs === undefined ? base : { ...base, memtideModelIdleDayMs: idleMs };
const onSignal = () => {
  void stopAll().then(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

runE2e({ scenario, checkTarget: !smoke, log: (line) => process.stderr.write(`${line}\n`) })
  .then((result) => {
    if (samplesFile !== undefined) {
      const runs = [result.baseline, result.memtide].map((run) => ({ mode: run.mode, phases: run.phases, samples: run.sampler.samples }));
      writeFileSync(samplesFile, JSON.stringify(runs));
    }
    console.log(result.text);
    process.exitCode = result.exitCode;
  })
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  });
