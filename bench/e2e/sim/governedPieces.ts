/**
 * The memtide pieces an embedding Meetily uses besides the proxy: the
 * `audio` and `transcription` config sections (`transcription` as the run's
 * optimization level makes it, e.g. whisper in a child process from
 * aggressive on; `audio` memtide's defaults), with the
 * idle unload scaled to the day's time compression and the import chunk
 * length set to Meetily's 25 s segments, so both runs transcribe the same
 * audio), memtide's pressure level and its batch hold (imports wait while a
 * summary model is busy or resident: docs/coordinator.md), both followed
 * over the runner's SSE feed (`/api/events`, the same feed the dashboard uses).
 */
import { BehaviorSubject, distinctUntilChanged, ReplaySubject, type Observable } from 'rxjs';
import { audioSchema } from '../../../src/app/schema/audio.js';
import { loadConfig } from '../../../src/app/config.js';
import type { TranscriptionConfig } from '../../../src/app/schema/transcription.js';
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
  /** memtide's `batch` event: true while batch transcription should wait. */
  batchHold$: Observable<boolean>;
  /** How many times batch work was held. */
  batchHolds(): number;
  close(): void;
}

export async function governedPieces(args: SimArgs): Promise<GovernedPieces> {
  // Written values win over the level's profile (as an embedding app's own options would); the rest is the level's.
  const { transcription } = loadConfig({
    env: {},
    set: [`optimization.level=${args.scenario.level}`],
    base: {
      transcription: {
        transcriber: 'whisper',
        modelPath: args.whisperModelPath,
        threads: args.scenario.whisperThreads,
        idleUnloadMs: Math.round(benchMs(args.scenario, args.scenario.memtideWhisperIdleDayMs)),
      },
    },
  });
  const pressure = new ReplaySubject<PressureChange>(1);
  const batchHold = new BehaviorSubject<boolean>(false);
  let events = 0;
  let holds = 0;
  let feed: SseConnection | null = null;
  if (args.runnerUrl !== null) {
    feed = openSse(`${args.runnerUrl}/api/events`, (event, data) => {
      if (event === 'batch') {
        const hold = (JSON.parse(data) as { hold: boolean }).hold === true;
        if (hold && !batchHold.value) holds += 1;
        batchHold.next(hold);
        return;
      }
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
    batchHold$: batchHold.pipe(distinctUntilChanged()),
    batchHolds: () => holds,
    close: () => {
      feed?.close();
      pressure.complete();
      batchHold.complete();
    },
  };
}
