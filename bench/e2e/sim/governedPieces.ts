/**
 * The memtide pieces an embedding Meetily uses besides the proxy: the
 * `audio` and `transcription` config sections (memtide's defaults, with the
 * idle unload scaled to the day's time compression and the import chunk
 * length set to Meetily's 25 s segments, so both runs transcribe the same
 * audio), and memtide's pressure level, followed over the runner's SSE feed
 * (`/api/events`, the same feed the dashboard uses).
 */
import { ReplaySubject, type Observable } from 'rxjs';
import { audioSchema } from '../../../src/app/schema/audio.js';
import { transcriptionSchema, type TranscriptionConfig } from '../../../src/app/schema/transcription.js';
import type { PressureChange } from '../../../src/model.js';
import type { AudioSourceConfig } from '../../../src/sources/audio/audioSource.js';
import type { SimArgs } from '../protocol.js';
import { benchMs } from '../scenario.js';
import { openSse, type SseConnection } from '../sse.js';

export interface GovernedPieces {
  audioConfig(chunkSeconds: number): AudioSourceConfig;
  transcription: TranscriptionConfig;
  pressure$: Observable<PressureChange>;
  pressureEvents(): number;
  close(): void;
}

export async function governedPieces(args: SimArgs): Promise<GovernedPieces> {
  const transcription = transcriptionSchema.parse({
    transcriber: 'whisper',
    modelPath: args.whisperModelPath,
    threads: args.scenario.whisperThreads,
    idleUnloadMs: Math.round(benchMs(args.scenario, args.scenario.memtideWhisperIdleDayMs)),
  });
  const pressure = new ReplaySubject<PressureChange>(1);
  let events = 0;
  let feed: SseConnection | null = null;
  if (args.runnerUrl !== null) {
    feed = openSse(`${args.runnerUrl}/api/events`, (event, data) => {
      if (event !== 'pressure') return;
      events += 1;
      pressure.next(JSON.parse(data) as PressureChange);
    });
    await feed.ready;
  }
  return {
    audioConfig: (chunkSeconds) => audioSchema.parse({ chunkSeconds }),
    transcription,
    pressure$: pressure.asObservable(),
    pressureEvents: () => events,
    close: () => {
      feed?.close();
      pressure.complete();
    },
  };
}
