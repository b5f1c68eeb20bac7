/**
 * `tsx bench/transcribe.ts` (proposed script `bench:transcribe`): the cost of
 * transcription through memtide's pipeline, against the decode-only dry run
 * (`--transcriber none`) in the same run, on the same 3-minute 44.1 kHz
 * stereo WAV (6 chunks of 30 s).
 *
 * - Each row runs in a fresh child process, so its peak RSS
 *   (`process.resourceUsage().maxRSS`) is its own.
 * - whisper rows use the generated random-weight tiny.en model
 *   (test/support/whisperModel.ts): whisper.cpp's load, memory and compute are
 *   real; decoding stops after a few tokens by construction, so real speech
 *   with a real model decodes longer than measured here.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lastValueFrom, toArray } from 'rxjs';
import { audioSchema } from '../src/app/schema/audio.js';
import { transcriptionSchema } from '../src/app/schema/transcription.js';
import { createTranscriber } from '../src/sources/transcribers/index.js';
import { transcribeFiles } from '../src/streams/transcription.js';
import { tempDir, writeWav } from '../test/support/wav.js';
import { randomTinyModelPath } from '../test/support/whisperModel.js';

const AUDIO_SECONDS = 180;
const ROWS = [
  { name: 'none (decode + chunk only)', transcriber: 'none', threads: null },
  { name: 'whisper, 1 thread', transcriber: 'whisper', threads: 1 },
  { name: 'whisper, 2 threads', transcriber: 'whisper', threads: 2 },
] as const;

interface Result {
  wallMs: number;
  chunks: number;
  maxRssMb: number;
}

async function row(file: string, model: string, index: number): Promise<Result> {
  const spec = ROWS[index]!;
  const config = transcriptionSchema.parse({ transcriber: spec.transcriber, modelPath: model, threads: spec.threads });
  const transcriber = createTranscriber(config);
  const started = performance.now();
  const events = await lastValueFrom(transcribeFiles([file], { transcriber, audio: audioSchema.parse({}), transcription: config }).pipe(toArray()));
  const wallMs = performance.now() - started;
  await transcriber.unload();
  const done = events.at(-1);
  if (done?.type !== 'done' || done.failed > 0) throw new Error(`row ${spec.name} failed: ${JSON.stringify(done)}`);
  return { wallMs, chunks: done.chunks, maxRssMb: process.resourceUsage().maxRSS / 1024 };
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--row');
  if (at >= 0) {
    const [file, model, index] = process.argv.slice(at + 1);
    process.stdout.write(JSON.stringify(await row(file!, model!, Number(index))));
    return;
  }
  const model = randomTinyModelPath();
  const tmp = tempDir('memtide-bench-transcribe-');
  try {
    const file = writeWav(path.join(tmp.dir, 'bench.wav'), { seconds: AUDIO_SECONDS, sampleRate: 44100, channels: 2 });
    const results = ROWS.map((_, index) => {
      const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--row', file, model, String(index)], { encoding: 'utf8', timeout: 600_000 });
      if (child.status !== 0) throw new Error(`row ${ROWS[index]!.name} exited ${child.status}: ${child.stderr}`);
      return JSON.parse(child.stdout) as Result;
    });
    const base = results[0]!;
    console.log(`date: ${new Date().toISOString()}, node ${process.version}, ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(2)}`);
    console.log(`input: ${AUDIO_SECONDS} s WAV, 44.1 kHz stereo 16-bit; chunks of 30 s; model: random-weight tiny.en (78 MB)\n`);
    console.log('| row | chunks | wall s | x real time | s per 30 s chunk | peak RSS MB | wall / none | RSS - none MB |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
    results.forEach((r, i) => {
      const perChunk = (r.wallMs / 1000 / r.chunks).toFixed(2);
      const ratio = i === 0 ? '' : `${(r.wallMs / base.wallMs).toFixed(0)}x`;
      const extra = i === 0 ? '' : (r.maxRssMb - base.maxRssMb).toFixed(0);
      console.log(`| ${ROWS[i]!.name} | ${r.chunks} | ${(r.wallMs / 1000).toFixed(2)} | ${(AUDIO_SECONDS / (r.wallMs / 1000)).toFixed(0)} | ${perChunk} | ${r.maxRssMb.toFixed(0)} | ${ratio} | ${extra} |`);
    });
  } finally {
    tmp.cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
