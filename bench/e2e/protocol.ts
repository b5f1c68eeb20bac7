/**
 * What the bench harness and the Meetily simulator say to each other: the
 * simulator's arguments (one JSON file) and the JSON lines it prints on
 * stdout (phases as they start, one report at the end).
 */
import type { Scenario } from './scenario.js';

export type Mode = 'baseline' | 'memtide';

export interface SimArgs {
  mode: Mode;
  scenario: Scenario;
  /** Where Meetily sends its Ollama requests: Ollama itself (baseline) or memtide's proxy. */
  ollamaUrl: string;
  /** memtide runner's API (memtide run only): the simulator follows its pressure over SSE. */
  runnerUrl: string | null;
  whisperModelPath: string;
  /** Per live meeting: the 16 kHz mono WAV its microphone plays. */
  micFiles: Record<string, string>;
  /** Per import: the recording. */
  importFiles: Record<string, string>;
  /** Recordings, Meetily's SQLite database. */
  workDir: string;
}

export interface RequestCounts {
  sent: number;
  answered: number;
  failed: number;
  /** `METHOD path -> count` of every request sent. */
  byRoute: Record<string, number>;
  failures: string[];
}

export interface ItemReport {
  name: string;
  kind: 'meeting' | 'import';
  expectedTranscripts: number;
  transcripts: number;
  emptyTranscripts: number;
  /** Largest number of live chunks waiting for whisper at once (meetings). */
  maxBacklogChunks: number;
  summaryRequests: number;
  summaryChars: number;
  summaryOk: boolean;
}

export interface SimReport {
  mode: Mode;
  items: ItemReport[];
  requests: RequestCounts;
  /** Rows in Meetily's own SQLite database at the end. */
  db: { meetings: number; transcripts: number; summaries: number };
  /** Pressure levels the simulator saw from memtide (memtide run). */
  pressureEvents: number;
  /** Times memtide held Meetily's batch transcription (its `batch` event). */
  batchHolds: number;
  /** whisper.cpp calls, their total time as this machine ran them (load included), and calls longer than their paced slot. */
  whisper: { chunks: number; totalMs: number; overruns: number };
  durationMs: number;
}

export type SimMessage = { type: 'phase'; name: string; atMs: number } | { type: 'report'; report: SimReport } | { type: 'error'; message: string };
