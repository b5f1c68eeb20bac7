/**
 * The simulated Meetily's day: the scenario's steps in order, the same in
 * both runs. At start it lists its Ollama models (`GET /api/tags`); after
 * every live meeting or import it reads the model's facts (`POST /api/show`)
 * and sends the transcript's summary requests (summarize.ts). The mode
 * decides only how live audio and imports are transcribed.
 */
import path from 'node:path';
import type { Transcriber } from '../../../src/sources/transcribers/transcriber.js';
import type { ItemReport, SimArgs, SimReport } from '../protocol.js';
import { benchMs, expectedTranscripts, type DayStep } from '../scenario.js';
import { send, sleep, type SimContext, type StepOutcome } from './context.js';
import { MeetilyDb } from './meetilyDb.js';
import { emptyCounts, meetilyContextSize, meetilyTokenThreshold, OllamaEndpoint, speechLengthTranscript, summarizeTranscript } from './summarize.js';

export interface ModeSteps {
  transcriber: Transcriber;
  liveMeeting(ctx: SimContext, step: Extract<DayStep, { kind: 'meeting' }>): Promise<StepOutcome>;
  importRecording(ctx: SimContext, step: Extract<DayStep, { kind: 'import' }>): Promise<StepOutcome>;
  pressureEvents(): number;
  /** Times memtide held batch transcription (0 without memtide). */
  batchHolds(): number;
  close(): void;
}

export async function runDay(args: SimArgs, mode: ModeSteps): Promise<SimReport> {
  const started = performance.now();
  const { scenario } = args;
  const db = new MeetilyDb(path.join(args.workDir, 'meeting_minutes.sqlite'));
  const ollama = new OllamaEndpoint(args.ollamaUrl, emptyCounts());
  const whisper = { chunks: 0, totalMs: 0, overruns: 0 };
  const slotMs = benchMs(scenario, scenario.whisperDayMsPerChunk);
  // Times and paces every chunk, whoever calls it (Meetily's worker, or memtide's pipeline).
  const timed: Transcriber = Object.create(mode.transcriber) as Transcriber;
  Object.defineProperty(timed, 'transcribe', {
    value: async (...call: Parameters<Transcriber['transcribe']>) => {
      const t0 = performance.now();
      const result = await mode.transcriber.transcribe(...call);
      const took = performance.now() - t0;
      whisper.chunks += 1;
      whisper.totalMs += took;
      if (slotMs > 0 && took > slotMs) whisper.overruns += 1;
      if (took < slotMs) await sleep(slotMs - took);
      return result;
    },
  });
  const ctx: SimContext = {
    args,
    db,
    transcriber: timed,
    ollama,
    phase: (name) => send({ type: 'phase', name, atMs: Date.now() }),
  };
  const model = scenario.summaryModel.name;
  const items: ItemReport[] = [];

  const summarize = async (item: DayStep & { kind: 'meeting' | 'import' }, outcome: StepOutcome, onFirstAnswer?: () => void): Promise<void> => {
    ctx.phase(`summary: ${item.name}`);
    // Meetily sizes its chunks from what /api/show says (verbose, like ollama/metadata.rs).
    const show = await ollama.call('POST', '/api/show', { name: model, verbose: true });
    const threshold = meetilyTokenThreshold(meetilyContextSize(show, model));
    const chunkSeconds = item.kind === 'meeting' ? scenario.liveChunkSeconds : scenario.importChunkSeconds;
    const transcript = speechLengthTranscript(db.transcripts(outcome.meetingId), Math.round((scenario.speechWordsPerMinute * chunkSeconds) / 60));
    const summary = await summarizeTranscript(ollama, model, transcript, threshold, onFirstAnswer);
    if (summary.markdown !== null) db.saveSummary(outcome.meetingId, summary.markdown, summary.requests);
    items.push({
      name: item.name,
      kind: item.kind,
      expectedTranscripts: expectedTranscripts(scenario, item),
      transcripts: outcome.transcripts,
      emptyTranscripts: outcome.emptyTranscripts,
      maxBacklogChunks: outcome.maxBacklogChunks,
      summaryRequests: summary.requests,
      summaryChars: summary.markdown?.length ?? 0,
      summaryOk: summary.markdown !== null,
    });
  };

  ctx.phase('app start');
  await ollama.call('GET', '/api/tags');
  /** The summary being generated, when the next step runs alongside it. */
  let pending: Promise<void> | null = null;
  for (const [index, item] of scenario.steps.entries()) {
    if (item.kind === 'idle') {
      ctx.phase(`idle: ${item.label}`);
      await sleep(benchMs(scenario, item.dayMinutes * 60_000));
      continue;
    }
    const outcome = item.kind === 'meeting' ? await mode.liveMeeting(ctx, item) : await mode.importRecording(ctx, item);
    await pending;
    pending = null;
    const next = scenario.steps[index + 1];
    if (next?.kind === 'import' && next.whilePreviousSummary) {
      // The user starts the import once the summary is under way (its first answer is in, so the model is loaded).
      let underWay!: () => void;
      const started = new Promise<void>((resolve) => (underWay = resolve));
      pending = summarize(item, outcome, underWay);
      await Promise.race([started, pending]);
    } else {
      await summarize(item, outcome);
    }
  }
  await pending;
  ctx.phase('day over');
  const counts = db.counts();
  db.close();
  await mode.transcriber.unload();
  mode.close();
  return { mode: args.mode, items, requests: ollama.counts, db: counts, pressureEvents: mode.pressureEvents(), batchHolds: mode.batchHolds(), whisper, durationMs: performance.now() - started };
}

/** Entry point of both simulator bundles: reads the arguments file, runs the day, prints the report. */
export async function simMain(build: (args: SimArgs) => Promise<ModeSteps>): Promise<void> {
  const file = process.argv[2];
  try {
    if (!file) throw new Error('usage: node simulator.mjs ARGS.json');
    const { readFileSync } = await import('node:fs');
    const args = JSON.parse(readFileSync(file, 'utf8')) as SimArgs;
    const report = await runDay(args, await build(args));
    send({ type: 'report', report });
    process.exitCode = 0;
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    process.exitCode = 1;
  }
}
