/**
 * A whisper.cpp engine copy in a child process, behind the few members of
 * `Worker` that the copy bookkeeping of whisperInProcess.ts uses
 * (`transcription.childProcess`, i.e. `isolation: "process"`).
 *
 * Why a process: ending it returns every byte the model and its buffers
 * took. A worker thread's memory is freed into the C allocator of memtide's
 * (or the embedding app's) process, which keeps much of it in its per-thread
 * arenas: 100-200 MB stayed resident after each unload of a 78 MB model in
 * bench:e2e. And a native abort inside whisper.cpp ends the child, not the
 * process that embeds memtide: the chunk fails with an error naming the
 * signal and whisper.cpp's last words, and the next chunk loads a new copy.
 * The cost: a fresh `node` per load (~40 MB, ~100 ms) and one copy of each
 * chunk's samples over the IPC channel (1.9 MB per 30 s chunk).
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { WHISPER_WORKER_SOURCE, type TranscribeMessage, type WorkerData, type WorkerReply } from './whisperWorker.js';

/** What whisperInProcess.ts needs of an engine copy's host: a worker thread or a child process. */
export interface EngineHost {
  on(event: 'message', listener: (reply: WorkerReply) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  postMessage(message: TranscribeMessage, transfer: ArrayBuffer[]): void;
  terminate(): Promise<unknown>;
  ref(): void;
  unref(): void;
}

/** Bytes of the child's stderr kept for the error message of a crash. */
const STDERR_KEPT = 2048;
/** A child that ignores SIGTERM this long gets SIGKILL. */
const KILL_AFTER_MS = 2000;

const lastLine = (text: string): string => text.trim().split('\n').at(-1)?.trim() ?? '';

/** Starts `node -e <engine source>` with an IPC channel (structured clone, so Float32Array samples pass as they are). */
export function startWhisperProcess(data: WorkerData): EngineHost {
  const child = spawn(process.execPath, ['-e', WHISPER_WORKER_SOURCE], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'advanced',
    env: { ...process.env, MEMTIDE_WHISPER_DATA: JSON.stringify(data) },
  });
  const events = new EventEmitter();
  let stderr = '';
  let terminating = false;
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  child.stderr?.on('data', (bytes: Buffer) => {
    stderr = (stderr + bytes.toString('utf8')).slice(-STDERR_KEPT);
  });
  child.on('message', (reply: WorkerReply) => events.emit('message', reply));
  child.on('error', (error) => events.emit('error', error));
  child.on('exit', (code, signal) => {
    exited = true;
    if (!terminating) {
      // Not asked to go: whisper.cpp aborted, ran out of memory, or was killed from outside.
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const said = lastLine(stderr);
      events.emit('error', new Error(`whisper process ${child.pid ?? '?'} ${how}${said ? `: ${said}` : ''}`));
    }
    events.emit('exit', code ?? -1);
  });

  const setRef = (on: boolean) => {
    // The stderr pipe is a net.Socket (it has ref/unref; its declared type, Readable, does not).
    const handles = [child, child.channel, child.stderr as unknown as { ref?(): void; unref?(): void } | null];
    for (const handle of handles) (on ? handle?.ref : handle?.unref)?.call(handle);
  };

  return {
    on(event: string, listener: (...args: any[]) => void) { // EventEmitter's own listener type
      events.on(event, listener);
      return this;
    },
    postMessage(message) {
      if (exited || !child.connected) {
        events.emit('error', new Error(`whisper process ${child.pid ?? '?'} is gone`));
        return;
      }
      child.send(message, (error) => {
        if (error) events.emit('error', new Error(`whisper process ${child.pid ?? '?'}: could not send the chunk: ${error.message}`));
      });
    },
    async terminate() {
      if (exited) return;
      terminating = true;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
      timer.unref();
      await exit;
      clearTimeout(timer);
    },
    ref: () => setRef(true),
    unref: () => setRef(false),
  } as EngineHost;
}
