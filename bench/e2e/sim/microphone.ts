/**
 * A live meeting's audio: the "microphone" plays a 16 kHz mono WAV one chunk
 * per chunk interval (a 30 s chunk every 30 s of day time), and Meetily's
 * recorder appends every chunk to the meeting's recording on disk (Meetily
 * saves recordings incrementally; both runs do). What happens to a chunk
 * besides being recorded is up to the listener: Meetily queues it for whisper
 * in memory; memtide's pipeline reads it back from the recording when it has
 * room for it.
 */
import fs from 'node:fs';
import { wavHeader } from '../../../test/support/wav.js';
import { sleep } from './context.js';

const HEADER_BYTES = 44;

export class LiveRecording {
  /** Chunks recorded so far. */
  recorded = 0;
  readonly chunkBytes: number;
  readonly totalChunks: number;
  private readonly micFd: number;
  private readonly recFd: number;
  private waiters: Array<() => void> = [];
  private finished = false;

  constructor(
    micFile: string,
    readonly recordingFile: string,
    chunkSeconds: number,
  ) {
    this.chunkBytes = chunkSeconds * 16000 * 2;
    const micBytes = fs.statSync(micFile).size - HEADER_BYTES;
    this.totalChunks = Math.ceil(micBytes / this.chunkBytes);
    this.micFd = fs.openSync(micFile, 'r');
    this.recFd = fs.openSync(recordingFile, 'w+');
    fs.writeSync(this.recFd, wavHeader(0, 16000, 1));
  }

  /** Plays the microphone in real (compressed) time; `onChunk` sees each chunk once it is recorded. */
  async play(intervalMs: number, onChunk: (index: number, samples: Int16Array) => void): Promise<void> {
    const started = performance.now();
    for (let index = 0; index < this.totalChunks; index += 1) {
      // A chunk is complete once its last sample has been spoken.
      const due = started + (index + 1) * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const bytes = Buffer.alloc(this.chunkBytes);
      const read = fs.readSync(this.micFd, bytes, 0, this.chunkBytes, HEADER_BYTES + index * this.chunkBytes);
      fs.writeSync(this.recFd, bytes, 0, read, HEADER_BYTES + index * this.chunkBytes);
      this.recorded = index + 1;
      onChunk(index, new Int16Array(bytes.buffer, bytes.byteOffset, read / 2));
      for (const wake of this.waiters.splice(0)) wake();
    }
    this.finished = true;
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves once chunk `index` is recorded (false if the recording ended before it). */
  async waitFor(index: number): Promise<boolean> {
    while (this.recorded <= index) {
      if (this.finished) return false;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return true;
  }

  /** Chunk `index` as read back from the recording on disk (a fresh buffer). */
  readRecorded(index: number): Int16Array {
    const bytes = Buffer.alloc(this.chunkBytes);
    const read = fs.readSync(this.recFd, bytes, 0, this.chunkBytes, HEADER_BYTES + index * this.chunkBytes);
    return new Int16Array(bytes.buffer, bytes.byteOffset, read / 2);
  }

  /** Stop: the WAV header gets its real size (the file is a valid recording). */
  close(): void {
    const dataBytes = fs.fstatSync(this.recFd).size - HEADER_BYTES;
    fs.writeSync(this.recFd, wavHeader(dataBytes, 16000, 1), 0, HEADER_BYTES, 0);
    fs.closeSync(this.recFd);
    fs.closeSync(this.micFd);
  }
}
