import { closeSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { HistoryStore, type TextSink } from '../../sinks/historyStore.js';
import { loadConfig } from '../config.js';
import { CONFIG_FLAGS, UsageError, durationFlag, oneOf, parse } from '../cliArgs.js';
import { parseDuration } from '../units.js';

export const historyHelp = `memtide history [--since 1h] [--component C] [--format json|csv] [--db FILE]

Prints stored history from the SQLite file (history.path, default memtide.db).
Raw samples inside the raw retention, 1-minute aggregates before it.
csv is the trace format: timestamp_ms,component,rss_bytes (system rows as
system.total / system.available), the input of \`memtide analyze\`.`;

export const exportHelp = `memtide export FILE.csv [--since 24h] [--db FILE]

Writes history as a trace CSV (timestamp_ms,component,rss_bytes; system memory
as components system.total and system.available). FILE "-" writes to stdout.
The file is written under a temporary name and renamed when complete.`;

const HISTORY_FLAGS = { ...CONFIG_FLAGS, db: { type: 'string' }, since: { type: 'string' } } as const;

function openStore(values: { db?: string | undefined; config?: string | undefined; set?: string[] | undefined }): HistoryStore {
  const config = loadConfig({ file: values.config, set: values.set ?? [] });
  const path = values.db ?? config.history.path;
  return HistoryStore.open(path, {
    rawRetentionMs: config.history.rawRetentionMs,
    aggregateBucketMs: config.history.aggregateBucketMs,
    aggregateRetentionMs: config.history.aggregateRetentionMs,
  });
}

export async function historyCommand(args: string[], out: (text: string) => void, now = Date.now()): Promise<number> {
  const { values } = parse(args, { ...HISTORY_FLAGS, component: { type: 'string' }, format: { type: 'string', short: 'f' } });
  if (values.help) {
    out(`${historyHelp}\n`);
    return 0;
  }
  const format = oneOf('format', values.format, ['json', 'csv'] as const, 'json');
  const sinceMs = now - durationFlag('since', values.since, parseDuration, 3_600_000);
  const store = openStore(values);
  try {
    const sink: TextSink = { write: (chunk) => out(chunk) };
    if (format === 'csv') {
      if (values.component) {
        out('timestamp_ms,component,rss_bytes\n');
        for (const p of store.componentSeries({ sinceMs, component: values.component })) out(`${p.timestampMs},${p.component},${p.rssBytes}\n`);
      } else {
        store.exportCsv(sink, { sinceMs });
      }
      return 0;
    }
    // Streamed JSON: rows are written as they are read, never collected.
    const writeArray = <T>(name: string, rows: Iterable<T>, first: boolean) => {
      out(`${first ? '' : ',\n'}  ${JSON.stringify(name)}: [`);
      let n = 0;
      for (const row of rows) out(`${n++ ? ',' : ''}\n    ${JSON.stringify(row)}`);
      out(n ? '\n  ]' : ']');
    };
    out(`{\n  "sinceMs": ${sinceMs},\n`);
    writeArray('components', store.componentSeries({ sinceMs, ...(values.component ? { component: values.component } : {}) }), true);
    if (!values.component) writeArray('system', store.systemSeries({ sinceMs }), false);
    writeArray('pressure', store.pressureEvents({ sinceMs }), false);
    out('\n}\n');
    return 0;
  } finally {
    store.close();
  }
}

export async function exportCommand(args: string[], out: (text: string) => void, now = Date.now()): Promise<number> {
  const { values, positionals } = parse(args, HISTORY_FLAGS);
  if (values.help) {
    out(`${exportHelp}\n`);
    return 0;
  }
  const [file, ...rest] = positionals;
  if (!file || rest.length) throw new UsageError('memtide export: give exactly one output file (or - for stdout)');
  const sinceMs = now - durationFlag('since', values.since, parseDuration, 86_400_000);
  const store = openStore(values);
  try {
    if (file === '-') {
      store.exportCsv({ write: (chunk) => out(chunk) }, { sinceMs });
      return 0;
    }
    // Write beside the target and rename at the end, so a failure never leaves half a trace.
    const temporary = `${file}.${process.pid}.tmp`;
    const fd = openSync(temporary, 'w');
    let open = true;
    try {
      const rows = store.exportCsv({ write: (chunk) => writeSync(fd, chunk) }, { sinceMs });
      closeSync(fd);
      open = false;
      renameSync(temporary, file);
      process.stderr.write(`wrote ${rows} rows to ${file}\n`);
    } catch (error) {
      if (open) closeSync(fd);
      unlinkSync(temporary);
      throw error;
    }
    return 0;
  } finally {
    store.close();
  }
}
