/**
 * Child process of killMidTransaction.test.ts: memtide (createMemtide) writing
 * heavy synthetic history, which SIGKILLs itself in the middle of a history
 * transaction: after half of the component rows of flush number `dieInFlush`
 * were inserted, before the commit. That is the worst moment for a crash, and
 * an external `kill -9` can only hit it by chance.
 *
 * argv: <db> <log file> <dieInFlush> <components>
 * The log gets, with fs.writeSync (in the kernel's page cache before the next
 * line runs, so it survives the kill): `S <timestampMs>` for every sample,
 * `F <atMs> <samples>` after every committed flush, `K <flush>` just before the kill.
 */
import fs from 'node:fs';
import { createMemtide } from '../../../src/app/memtide.js';
import type { RawProcess } from '../../../src/sources/readers.js';

const [db, logFile, dieInFlushText, componentsText] = process.argv.slice(2);
if (!db || !logFile || !dieInFlushText || !componentsText) throw new Error('usage: historyWriterChild.ts <db> <log> <dieInFlush> <components>');
const dieInFlush = Number(dieInFlushText);
const components = Number(componentsText);
const log = fs.openSync(logFile, 'a');
const write = (line: string) => fs.writeSync(log, `${line}\n`);

const GiB = 1024 ** 3;
const processes: RawProcess[] = Array.from({ length: components }, (_, i) => ({
  pid: 1000 + i,
  ppid: 1,
  name: `w${i}`,
  cmdline: `/usr/bin/w${i}`,
  startTimeTicks: 1,
  rssBytes: (i + 1) * 1024 * 1024,
}));
let tick = 0;

const memtide = createMemtide({
  config: {
    sampling: { intervalMs: 50, pss: 'off' },
    components: { rules: processes.map((p, i) => ({ component: `w${i}`, name: `^${p.name}$` })) },
    history: { enabled: true, path: db, flushIntervalMs: 300 },
  },
  readers: {
    kind: 'linux',
    system: {
      // Moving numbers, so every sample writes different values.
      read: async () => {
        tick += 1;
        const availableBytes = 8 * GiB - (tick % 100) * 1024 * 1024;
        return { totalBytes: 16 * GiB, availableBytes, usedBytes: 16 * GiB - availableBytes, swapTotalBytes: 0, swapUsedBytes: 0, psi: null, physicalTotalBytes: 16 * GiB, cgroupLimitBytes: null };
      },
    },
    processes: { list: async () => processes, readSmaps: async () => null, listeningPorts: async () => new Map() },
  },
});

const store = memtide.history;
if (!store) throw new Error('history is not enabled');
const stmts = Reflect.get(store, 'stmts') as { insertComponent: { run(...args: unknown[]): unknown } };
const insertComponent = stmts.insertComponent;
let flush = 0;
let rowsThisFlush = 0;
let rowsPerFlushGuess = 0;
// Count the flushes (the sink calls `store.append` once per transaction) ...
const append = store.append.bind(store);
store.append = (samples, pressure) => {
  flush += 1;
  rowsThisFlush = 0;
  rowsPerFlushGuess = samples.length * components;
  append(samples, pressure);
};
// ... and die half-way through the component rows of flush `dieInFlush`, inside its transaction.
stmts.insertComponent = {
  run(...args: unknown[]) {
    const result = insertComponent.run(...args);
    rowsThisFlush += 1;
    if (flush === dieInFlush && rowsThisFlush >= rowsPerFlushGuess / 2) {
      write(`K ${flush}`);
      process.kill(process.pid, 'SIGKILL');
    }
    return result;
  },
};

memtide.samples$.subscribe({ next: (s) => write(`S ${s.timestampMs}`), error: (e: unknown) => write(`E ${String(e)}`) });
memtide.flushes$.subscribe({ next: (f) => write(`F ${f.atMs} ${f.samples}`), error: (e: unknown) => write(`E ${String(e)}`) });
memtide.problems$.subscribe({ next: (p) => write(`P ${p.source} ${String(p.error)}`), error: (e: unknown) => write(`E ${String(e)}`) });
// Never reached when the kill works: a safety net so a broken test does not leave the child running.
setTimeout(() => {
  write('T timeout');
  memtide.stop();
  process.exit(3);
}, 20_000).unref();
setInterval(() => undefined, 1000);
