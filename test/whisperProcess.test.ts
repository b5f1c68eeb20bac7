/**
 * whisper.cpp copies in child processes (`isolation: "process"`,
 * src/sources/transcribers/whisperProcess.ts) on the generated random-weight
 * tiny.en model: the same engine and text as a worker thread, but an unload
 * ends the process (every byte back), a crash fails one chunk instead of the
 * embedding process, and a parent that dies takes its whisper with it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWhisperInProcess } from '../src/sources/transcribers/whisperInProcess.js';
import { spawnTsx } from './support/tsxChild.js';
import { waitFor } from './support/wait.js';
import { tempDir } from './support/wav.js';
import { randomTinyModelPath, toneChunk } from './support/whisperModel.js';

const MB = 1e6;
let modelPath: string;
let tmp: ReturnType<typeof tempDir>;

beforeAll(() => {
  modelPath = randomTinyModelPath();
  tmp = tempDir('memtide-whisper-process-');
});
afterAll(() => tmp.cleanup());

const chunkOf = toneChunk;

/** Live `memtide-whisper` processes whose parent is `parent`. */
function whisperChildren(parent: number): number[] {
  return fs.readdirSync('/proc').flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      const status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const zombie = /^State:\s+Z/m.test(status);
      return ppid === parent && cmdline.startsWith('memtide-whisper') && !zombie ? [Number(entry)] : [];
    } catch {
      return []; // exited while we looked
    }
  });
}

const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));


describe.sequential('whisper.cpp in a child process', () => {
  it('gives the worker thread\'s text; the model lives in the child, and an unload ends it', async () => {
    const thread = createWhisperInProcess({ modelPath, threads: 2, idleUnloadMs: 60_000 });
    const expected = await thread.transcribe(chunkOf(3));
    await thread.unload();

    const isolated = createWhisperInProcess({ modelPath, threads: 2, idleUnloadMs: 60_000, isolation: 'process' });
    const before = process.memoryUsage().rss;
    const result = await isolated.transcribe(chunkOf(3));
    expect(result.text).toBe(expected.text);
    expect(isolated.loaded).toBe(true);
    expect(isolated.modelBytes).toBe(fs.statSync(modelPath).size);
    const [child] = whisperChildren(process.pid);
    expect(child).toBeDefined();
    // its kernel name is what component rules match (DEFAULT_COMPONENT_RULES: audio)
    expect(fs.readFileSync(`/proc/${child}/comm`, 'utf8').trim()).toBe('memtide-whisper');
    const childRss = Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${child}/status`, 'utf8'))?.[1]) * 1024;
    expect(childRss).toBeGreaterThan(100 * MB); // weights (~78 MB) and buffers are there...
    expect(process.memoryUsage().rss - before).toBeLessThan(50 * MB); // ...not here (a worker thread adds ~240 MB)

    await isolated.unload();
    expect(isolated.loaded).toBe(false);
    await waitFor(`whisper process ${child} to end`, () => !alive(child!), { timeoutMs: 2000 });
    expect(whisperChildren(process.pid)).toEqual([]);
  });

  it('idle unload ends the process; the next chunk starts a new one', async () => {
    const isolated = createWhisperInProcess({ modelPath, threads: 2, idleUnloadMs: 300, isolation: 'process' });
    await isolated.transcribe(chunkOf(1));
    const [first] = whisperChildren(process.pid);
    await waitFor('the idle unload to end the whisper process', () => !isolated.loaded && !alive(first!));
    await isolated.transcribe(chunkOf(1, 1));
    const [second] = whisperChildren(process.pid);
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    await isolated.unload();
  });

  it('a crash of the engine fails its chunk with the signal named, and this process carries on with a new copy', async () => {
    const isolated = createWhisperInProcess({ modelPath, threads: 2, idleUnloadMs: 60_000, isolation: 'process' });
    try {
      await isolated.transcribe(chunkOf(1)); // loaded
      const [child] = whisperChildren(process.pid);
      const running = isolated.transcribe(chunkOf(30, 1)); // seconds of native work
      await new Promise((r) => setTimeout(r, 300));
      process.kill(child!, 'SIGKILL'); // as whisper.cpp's abort() or the OOM killer would end it
      await expect(running).rejects.toMatchObject({ code: 'MEMTIDE_ERR_TRANSCRIBER_FAILED', message: expect.stringMatching(/whisper process \d+ was killed by SIGKILL/) });
      expect(isolated.loaded).toBe(false);
      const next = await isolated.transcribe(chunkOf(1, 2));
      expect(typeof next.text).toBe('string');
      expect(whisperChildren(process.pid)).not.toContain(child);
    } finally {
      await isolated.unload();
    }
  });

  it('a wrong model is refused before any process starts (the file check runs first)', async () => {
    const isolated = createWhisperInProcess({ modelPath: path.join(tmp.dir, 'missing.bin'), idleUnloadMs: 1000, isolation: 'process' });
    await expect(isolated.transcribe(chunkOf(1))).rejects.toMatchObject({ code: 'MEMTIDE_ERR_TRANSCRIBER_MODEL', message: expect.stringContaining('no such file') });
    expect(whisperChildren(process.pid)).toEqual([]);
  });

  it('a parent that dies (kill -9) takes its whisper process with it', async () => {
    const script = path.join(tmp.dir, 'parent.mts');
    const source = path.resolve('src/sources/transcribers/whisperInProcess.ts');
    fs.writeFileSync(
      script,
      [
        `import { createWhisperInProcess } from ${JSON.stringify(source)};`,
        `const w = createWhisperInProcess({ modelPath: ${JSON.stringify(modelPath)}, threads: 1, idleUnloadMs: 600_000, isolation: 'process' });`,
        `await w.transcribe({ source: 't', index: 0, startMs: 0, endMs: 1000, firstSample: 0, sampleRate: 16000, samples: new Int16Array(16000), last: true });`,
        `process.stdout.write('loaded\\n');`,
        `setInterval(() => undefined, 1000);`,
      ].join('\n'),
    );
    const parent = spawnTsx(script);
    try {
      await waitFor('the parent to load whisper', () => parent.stdout().includes('loaded'), { timeoutMs: 30_000, detail: parent.stderr });
      const [whisper] = whisperChildren(parent.child.pid!);
      expect(whisper).toBeDefined();
      parent.kill();
      await waitFor(`orphaned whisper ${whisper} to exit`, () => !alive(whisper!));
    } finally {
      parent.kill();
    }
  });
});
