/**
 * The numbers of both runs, side by side: per-component and total memory
 * (peak and time-weighted mean), what happened at each run's peak, the
 * reductions, and every functionality check (transcripts, summaries,
 * requests, the dashboard, memtide's history).
 */
import os from 'node:os';
import type { ModeResult } from './runMode.js';
import { COMPONENTS, type Phase } from './runMode.js';
import { seriesStats, type Sample, type SeriesStats } from './processSampler.js';
import { runnerSizeBytes } from '../../test/support/fakeOllamaModels.js';
import { benchMs, describeScenario, profileNumber, profileSwitch, type Scenario } from './scenario.js';

const MB = 1e6;
const mb = (bytes: number) => (bytes / MB).toFixed(0);
const s = (ms: number) => (ms / 1000).toFixed(1);

export interface Outcome {
  peakReduction: number;
  meanReduction: number;
  requestsLost: number;
  /** Every transcript, summary and request of both runs produced; the memtide run's dashboard and history worked. */
  functional: boolean;
  problems: string[];
  lines: string[];
}

function phaseAt(phases: readonly Phase[], atMs: number): string {
  let name = 'start';
  for (const phase of phases) if (phase.atMs <= atMs) name = phase.name;
  return name;
}

function componentStats(samples: readonly Sample[], component: string): SeriesStats {
  return seriesStats(samples, (x) => x.components[component] ?? 0);
}

function checks(result: ModeResult): string[] {
  const problems: string[] = [];
  const label = result.mode === 'memtide' ? 'memtide' : 'Meetily defaults';
  for (const item of result.sim.items) {
    if (item.transcripts !== item.expectedTranscripts) problems.push(`${label}: "${item.name}" produced ${item.transcripts} of ${item.expectedTranscripts} transcripts`);
    if (item.emptyTranscripts > 0) problems.push(`${label}: "${item.name}" has ${item.emptyTranscripts} empty transcripts`);
    if (!item.summaryOk) problems.push(`${label}: "${item.name}" has no summary`);
  }
  const { db, requests } = result.sim;
  const expected = result.sim.items.reduce((n, i) => n + i.expectedTranscripts, 0);
  if (db.transcripts !== expected) problems.push(`${label}: Meetily's database holds ${db.transcripts} transcripts, expected ${expected}`);
  if (db.summaries !== result.sim.items.length) problems.push(`${label}: Meetily's database holds ${db.summaries} summaries, expected ${result.sim.items.length}`);
  if (requests.failed > 0 || requests.answered !== requests.sent) problems.push(`${label}: ${requests.failed} of ${requests.sent} Ollama requests lost: ${requests.failures.slice(0, 3).join('; ')}`);
  if (result.mode === 'memtide') {
    const events = result.dashboard?.events ?? {};
    if (!result.dashboard || !(events.sample ?? 0)) problems.push('memtide: the dashboard received no live samples over SSE');
    if (!result.history || result.history.systemSamples === 0) problems.push('memtide: no history was written');
    // Meetily's own chunking may overflow Ollama's context; with memtide in the path nothing may be cut.
    if ((result.ollamaStats?.truncated ?? 0) > 0) problems.push(`memtide: Ollama truncated ${result.ollamaStats?.truncated} summary prompts (part of a transcript was never read)`);
  }
  return problems;
}

export function buildReport(scenario: Scenario, baseline: ModeResult, memtide: ModeResult, meta: { loadStart: number; whisperModelBytes: number; samplingIntervalMs: number }): Outcome {
  const lines: string[] = [];
  const runs = [baseline, memtide];
  const totals = runs.map((r) => seriesStats(r.sampler.samples, (x) => x.total));
  const [tb, tm] = totals as [SeriesStats, SeriesStats];
  const peakReduction = 1 - tm.peak / tb.peak;
  const meanReduction = 1 - tm.mean / tb.mean;
  const requestsLost = runs.reduce((n, r) => n + (r.sim.requests.sent - r.sim.requests.answered), 0);
  const problems = [...checks(baseline), ...checks(memtide)];
  const reads = runs.reduce((n, r) => n + r.sampler.pssReads, 0);
  const rssReads = runs.reduce((n, r) => n + r.sampler.rssReads, 0);
  const runner = runnerSizeBytes(scenario.summaryModel, scenario.ollamaDefaultNumCtx);
  const numBatch = profileNumber(scenario.level, 'models.numBatch');
  const governedBatch = numBatch === null ? '' : ` (${(runnerSizeBytes(scenario.summaryModel, scenario.ollamaDefaultNumCtx, scenario.governedKvCache ?? 'f16', numBatch) / 1e9).toFixed(2)} GB at num_batch ${numBatch}, memtide's level${scenario.governedKvCache ? ` with its ${scenario.governedKvCache} KV cache` : ''})`;

  lines.push(`date: ${new Date().toISOString()}, node ${process.version}, ${os.availableParallelism()} cores, kernel ${os.release()}, load average ${meta.loadStart.toFixed(2)} at start / ${os.loadavg()[0]!.toFixed(2)} at end`);
  lines.push(`scenario: ${scenario.name}; one day minute = ${s(benchMs(scenario, 60_000) * 1000)} ms of bench time (x${scenario.timeScale})`);
  for (const line of describeScenario(scenario)) lines.push(`  - ${line}`);
  lines.push(
    `timers, day -> bench: Ollama keep_alive ${scenario.ollamaKeepAliveDayMs / 60_000} min -> ${s(benchMs(scenario, scenario.ollamaKeepAliveDayMs))} s; memtide (optimization.level ${scenario.level}${scenario.governedKvCache ? `; what-if: its Ollama runs OLLAMA_KV_CACHE_TYPE=${scenario.governedKvCache}, as memtide recommends, the baseline's f16` : ''}) models.idleTimeoutMs ${scenario.memtideModelIdleDayMs / 1000} s -> ${s(benchMs(scenario, scenario.memtideModelIdleDayMs))} s, pressureGraceMs ${scenario.memtidePressureGraceDayMs / 1000} s -> ${(benchMs(scenario, scenario.memtidePressureGraceDayMs) / 1000).toFixed(2)} s, transcription.idleUnloadMs ${scenario.memtideWhisperIdleDayMs / 60_000} min -> ${s(benchMs(scenario, scenario.memtideWhisperIdleDayMs))} s; a summary answer ${scenario.answerDayMs / 1000} s -> ${s(benchMs(scenario, scenario.answerDayMs))} s after its prompt is read at ${scenario.promptDayMsPerToken} ms a token (any num_batch: the real llama.cpp measured no slowdown down to 64); a live ${scenario.liveChunkSeconds} s chunk every ${s(benchMs(scenario, scenario.liveChunkSeconds * 1000))} s`,
  );
  lines.push(
    `summary model: ${scenario.summaryModel.name} ${scenario.summaryModel.quantization}, runner ${(runner / 1e9).toFixed(2)} GB at num_ctx ${scenario.ollamaDefaultNumCtx}${governedBatch}, ${(runnerSizeBytes(scenario.summaryModel, scenario.ollamaDefaultNumCtx / 2) / 1e9).toFixed(2)} GB at ${scenario.ollamaDefaultNumCtx / 2} (allocated and filled for real); whisper: random-weight tiny.en (${(meta.whisperModelBytes / MB).toFixed(0)} MB), ${scenario.whisperThreads} threads, one model copy${profileSwitch(scenario.level, 'transcription.childProcess') ? " (memtide's: in a child process, transcription.childProcess)" : ''}${scenario.whisperDayMsPerChunk > 0 ? `, each call paced to ${scenario.whisperDayMsPerChunk / 1000} s of day time per ${scenario.liveChunkSeconds} s chunk` : ''}`,
  );
  lines.push(`memory: PSS from smaps_rollup (${reads} process reads${rssReads > 0 ? `, RSS for ${rssReads}` : ''}), every ${meta.samplingIntervalMs} ms, all processes of each run; window = the simulated Meetily's day`);
  lines.push('');
  lines.push('| component | Meetily defaults: peak MB | mean MB | memtide: peak MB | mean MB |');
  lines.push('|---|---:|---:|---:|---:|');
  for (const component of Object.values(COMPONENTS)) {
    const [b, m] = runs.map((r) => componentStats(r.sampler.samples, component)) as [SeriesStats, SeriesStats];
    const cell = (x: SeriesStats, run: ModeResult) => (run.sampler.samples.some((sample) => component in sample.components) ? [mb(x.peak), mb(x.mean)] : ['-', '-']);
    lines.push(`| ${component} | ${cell(b, baseline).join(' | ')} | ${cell(m, memtide).join(' | ')} |`);
  }
  lines.push(`| **total** (peak at one instant) | **${mb(tb.peak)}** | **${mb(tb.mean)}** | **${mb(tm.peak)}** | **${mb(tm.mean)}** |`);
  const [rb, rm] = runs.map((r) => seriesStats(r.sampler.samples, (x) => x.rssTotal)) as [SeriesStats, SeriesStats];
  lines.push(`| total as RSS (shared pages counted per process) | ${mb(rb.peak)} | ${mb(rb.mean)} | ${mb(rm.peak)} | ${mb(rm.mean)} |`);
  lines.push('');
  for (const [index, run] of runs.entries()) {
    const total = totals[index]!;
    const start = run.sampler.samples[0]?.atMs ?? 0;
    const at = run.sampler.samples.find((x) => x.atMs === total.peakAtMs);
    const parts = Object.entries(at?.components ?? {}).map(([k, v]) => `${k} ${mb(v)}`);
    lines.push(`${run.mode === 'memtide' ? 'memtide' : 'Meetily defaults'} peak ${mb(total.peak)} MB at +${s(total.peakAtMs - start)} s, during "${phaseAt(run.phases, total.peakAtMs)}": ${parts.join(', ')}`);
  }
  lines.push('');
  const modelHeld = runs.map((r) => {
    const m = componentStats(r.sampler.samples, COMPONENTS.model);
    return (m.mean * m.durationMs * scenario.timeScale) / 3_600_000 / 1e9;
  });
  const row = (name: string, b: string, m: string, ratio = '') => lines.push(`| ${name} | ${b} | ${m} | ${ratio} |`);
  const items = (r: ModeResult, pick: (i: ModeResult['sim']['items'][number]) => number) => r.sim.items.reduce((n, i) => n + pick(i), 0);
  lines.push('| | Meetily defaults | memtide | memtide / defaults |');
  lines.push('|---|---:|---:|---:|');
  const change = (ratio: number) => `${ratio.toFixed(2)} (${Math.abs((1 - ratio) * 100).toFixed(0)}% ${ratio <= 1 ? 'less' : 'more'})`;
  row('peak total (MB)', mb(tb.peak), mb(tm.peak), change(tm.peak / tb.peak));
  row('time-weighted mean total (MB)', mb(tb.mean), mb(tm.mean), change(tm.mean / tb.mean));
  row('same, as RSS: peak / mean (MB)', `${mb(rb.peak)} / ${mb(rb.mean)}`, `${mb(rm.peak)} / ${mb(rm.mean)}`, `${(rm.peak / rb.peak).toFixed(2)} / ${(rm.mean / rb.mean).toFixed(2)}`);
  row('model memory held (GB x day-hours)', modelHeld[0]!.toFixed(2), modelHeld[1]!.toFixed(2), (modelHeld[1]! / modelHeld[0]!).toFixed(2));
  row('day length (bench s)', s(tb.durationMs), s(tm.durationMs), (tm.durationMs / tb.durationMs).toFixed(2));
  row('Ollama model loads / unloads', `${baseline.ollamaStats?.loads ?? '?'} / ${baseline.ollamaStats?.unloads ?? '?'}`, `${memtide.ollamaStats?.loads ?? '?'} / ${memtide.ollamaStats?.unloads ?? '?'}`);
  const perChunk = (r: ModeResult) => `${(r.sim.whisper.totalMs / Math.max(1, r.sim.whisper.chunks) / 1000).toFixed(2)} s x ${r.sim.whisper.chunks}${scenario.whisperDayMsPerChunk > 0 ? `, ${r.sim.whisper.overruns} over the slot` : ''}`;
  row(
    scenario.whisperDayMsPerChunk > 0 ? `whisper.cpp work per chunk on this machine (paced to ${s(benchMs(scenario, scenario.whisperDayMsPerChunk))} s) x chunks` : 'whisper.cpp per chunk on this machine x chunks',
    perChunk(baseline),
    perChunk(memtide),
  );
  row('live chunks waiting for whisper, most at once', String(Math.max(...baseline.sim.items.map((i) => i.maxBacklogChunks))), String(Math.max(...memtide.sim.items.map((i) => i.maxBacklogChunks))));
  row('transcripts produced / expected', `${items(baseline, (i) => i.transcripts)} / ${items(baseline, (i) => i.expectedTranscripts)}`, `${items(memtide, (i) => i.transcripts)} / ${items(memtide, (i) => i.expectedTranscripts)}`);
  row('summaries produced / expected', `${baseline.sim.items.filter((i) => i.summaryOk).length} / ${baseline.sim.items.length}`, `${memtide.sim.items.filter((i) => i.summaryOk).length} / ${memtide.sim.items.length}`);
  row('summary requests (POST /v1/chat/completions)', String(items(baseline, (i) => i.summaryRequests)), String(items(memtide, (i) => i.summaryRequests)));
  row('summary prompts Ollama truncated (longer than the context it ran them at)', String(baseline.ollamaStats?.truncated ?? '?'), String(memtide.ollamaStats?.truncated ?? '?'));
  const req = (r: ModeResult) => `${r.sim.requests.sent} / ${r.sim.requests.answered} / ${r.sim.requests.sent - r.sim.requests.answered}`;
  row('Ollama requests sent / answered / lost', req(baseline), req(memtide));
  const db = (r: ModeResult) => `${r.sim.db.meetings} meetings, ${r.sim.db.transcripts} transcripts, ${r.sim.db.summaries} summaries`;
  row("Meetily's SQLite at the end", db(baseline), db(memtide));
  const d = memtide.dashboard;
  row(
    'dashboard (page, assets, SSE /api/events)',
    '-',
    d ? `page + ${d.assets} assets (${(d.assetBytes / 1024).toFixed(0)} KiB), open ${s(d.openMs)} s, events ${Object.entries(d.events).map(([k, v]) => `${k} ${v}`).join(', ')}` : 'not opened',
  );
  row("memtide's history (SQLite)", '-', memtide.history ? `${memtide.history.systemSamples} samples, ${memtide.history.componentRows} component rows` : 'none');
  row('pressure levels Meetily received from memtide', '-', String(memtide.sim.pressureEvents));
  row('times memtide held the import while the summary model was busy or resident', '-', String(memtide.sim.batchHolds));
  lines.push('');
  const overruns = runs.reduce((n, r) => n + r.sim.whisper.overruns, 0);
  const calls = runs.reduce((n, r) => n + r.sim.whisper.chunks, 0);
  if (scenario.whisperDayMsPerChunk > 0 && overruns > calls / 10) {
    lines.push(`warning: ${overruns} of ${calls} whisper calls took longer than their ${s(benchMs(scenario, scenario.whisperDayMsPerChunk))} s slot (the machine is busy); the two runs' timelines may differ, compare their day lengths`);
  }
  lines.push(problems.length === 0 ? 'functionality: every transcript and summary was produced in both runs; no Ollama request was lost; the dashboard streamed and history was written' : `functionality problems: ${problems.join('; ')}`);
  return { peakReduction, meanReduction, requestsLost, functional: problems.length === 0, problems, lines };
}
