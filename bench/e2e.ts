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
 *    dist/, optimization level aggressive, history in SQLite, dashboard open
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
 * what-if runs (the report's timer line shows the value used).
 */
import { runE2e } from './e2e/run.js';
import { stopAll } from './e2e/child.js';
import { parseDuration } from '../src/app/units.js';
import { MEETING_DAY, SMOKE_DAY } from './e2e/scenario.js';

const smoke = process.argv.includes('--smoke');
const idleFlag = process.argv.indexOf('--idle-timeout');
const idleMs = idleFlag >= 0 ? parseDuration(process.argv[idleFlag + 1] ?? '') : undefined;
if (idleMs === null) {
  console.error(`--idle-timeout: not a duration: "${process.argv[idleFlag + 1] ?? ''}" (e.g. 15s, 1m)`);
  process.exit(2);
}
const base = smoke ? SMOKE_DAY : MEETING_DAY;
const scenario = idleMs === undefined ? base : { ...base, memtideModelIdleDayMs: idleMs };
const onSignal = () => {
  void stopAll().then(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

runE2e({ scenario, checkTarget: !smoke, log: (line) => process.stderr.write(`${line}\n`) })
  .then((result) => {
    console.log(result.text);
    process.exitCode = result.exitCode;
  })
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  });
