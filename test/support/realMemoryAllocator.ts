/**
 * Backs the fake Ollama's runners with real memory, for benchmarks that need
 * the machine's memory (and memtide's readings of it) to rise and fall like
 * it does under a real Ollama: a child `node` process (named in its command
 * line as `memtide-fake-runner`) holds, per loaded model, Buffers filled with
 * data (so every page is resident, not a lazily mapped zero page) and frees
 * them on unload (Buffers this large are mmap'd by the allocator, so freeing
 * them returns the pages to the kernel at once, and RSS falls).
 *
 * Commands go over the IPC channel: `{ id, op: 'load' | 'unload' | 'rss', name?, bytes? }`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { FakeAllocator } from './fakeOllamaScheduler.js';

/** The child's program (plain JS, so it runs without a TypeScript loader). */
const CHILD_SOURCE = `
const held = new Map();
const CHUNK = 64 * 1024 * 1024;
process.title = 'memtide-fake-runner';
process.on('message', (msg) => {
  try {
    if (msg.op === 'load') {
      const chunks = [];
      for (let left = msg.bytes; left > 0; left -= CHUNK) {
        const size = Math.min(CHUNK, left);
        const chunk = Buffer.allocUnsafeSlow(size);
        chunk.fill((chunks.length % 255) + 1);
        chunks.push(chunk);
      }
      held.set(msg.name, chunks);
    } else if (msg.op === 'unload') {
      held.delete(msg.name);
      if (global.gc) { global.gc(); global.gc(); }
    }
    process.send({ id: msg.id, ok: true, rss: process.memoryUsage.rss() });
  } catch (error) {
    process.send({ id: msg.id, ok: false, error: String(error && error.message || error) });
  }
});
process.on('disconnect', () => process.exit(0));
`;

export interface RealMemoryAllocator extends FakeAllocator {
  readonly pid: number;
  /** The child's resident set size now. */
  rssBytes(): Promise<number>;
  close(): Promise<void>;
}

interface Reply {
  id: number;
  ok: boolean;
  rss?: number;
  error?: string;
}

export function startRealMemoryAllocator(): RealMemoryAllocator {
  const child: ChildProcess = spawn(process.execPath, ['--expose-gc', '-e', CHILD_SOURCE, 'memtide-fake-runner'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting = new Map<number, { resolve: (reply: Reply) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  let exited: Error | null = null;
  child.on('message', (message: Reply) => {
    const entry = waiting.get(message.id);
    waiting.delete(message.id);
    entry?.resolve(message);
  });
  child.on('exit', (code, signal) => {
    exited = new Error(`memory child exited (${signal ?? code})`);
    for (const entry of waiting.values()) entry.reject(exited);
    waiting.clear();
  });
  // The commands are serialised by the child's single thread; each waits for its own reply.
  const call = (command: { op: 'load' | 'unload' | 'rss'; name?: string; bytes?: number }): Promise<Reply> => {
    if (exited) return Promise.reject(exited);
    const id = nextId++;
    return new Promise<Reply>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      child.send({ id, ...command });
    }).then((reply) => {
      if (!reply.ok) throw new Error(`memory child: ${reply.error ?? 'failed'}`);
      return reply;
    });
  };

  return {
    pid: child.pid ?? -1,
    async load(name, bytes) {
      await call({ op: 'load', name, bytes });
    },
    async unload(name) {
      await call({ op: 'unload', name });
    },
    async rssBytes() {
      return (await call({ op: 'rss' })).rss ?? 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (exited || child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.disconnect();
      }),
  };
}
