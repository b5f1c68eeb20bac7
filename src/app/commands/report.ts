import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { HistoryStore } from '../../sinks/historyStore.js';
import { CONFIG_FLAGS, UsageError, oneOf, parse } from '../cliArgs.js';
import { loadConfig } from '../config.js';
import { ReportError, buildReport, renderHtml, renderJson, renderMarkdown, type MemoryReport } from '../report/index.js';
import { parseDuration } from '../units.js';

export const reportHelp = `memtide report [--since 24h] [--until TIME] [--format md|html|json] [--out FILE]
               [--db FILE] [--config FILE] [--set KEY=VALUE]

A memory report from the history database (history.path, default memtide.db):
per component current / peak / average and trend (stable, growing,
shrinking), system available memory, the pressure timeline, leak suspects,
alerts, the actions memtide took or (observe-only) would have taken with
memory before and after, and ranked suggestions with the memory each is
expected to free.
--since / --until take a duration back from now (30m, 24h, 7d) or an ISO
time (2024-05-01T09:00:00Z); --until defaults to now.
html is one self-contained file (inline CSS and SVG charts, no script, no
network). --format defaults to the --out extension (.html, .json), else md.
--out writes under a temporary name and renames when complete.`;

const REPORT_FLAGS = {
  ...CONFIG_FLAGS,
  db: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  format: { type: 'string', short: 'f' },
  out: { type: 'string', short: 'o' },
} as const;

const FORMATS = ['md', 'html', 'json'] as const;
type Format = (typeof FORMATS)[number];

/** A duration back from `now`, or an ISO date-time. */
function timeFlag(name: string, value: string | undefined, now: number, fallback: number): number {
  if (value === undefined) return fallback;
  const ago = parseDuration(value);
  if (ago !== null) return now - ago;
  const at = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(at)) throw new UsageError(`--${name}: not a duration or an ISO time: "${value}" (use e.g. 24h, 7d or 2024-05-01T09:00:00Z)`);
  return at;
}

function formatOf(format: string | undefined, out: string | undefined): Format {
  if (format === undefined && out !== undefined) {
    if (/\.html?$/i.test(out)) return 'html';
    if (/\.json$/i.test(out)) return 'json';
  }
  return oneOf('format', format, FORMATS, 'md');
}

export function renderReport(report: MemoryReport, format: Format): string {
  switch (format) {
    case 'md':
      return renderMarkdown(report);
    case 'html':
      return renderHtml(report);
    case 'json':
      return renderJson(report);
  }
}

/** Writes beside the target and renames at the end: readers never see half a report, a failure leaves no file. */
export function writeAtomically(file: string, text: string): void {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, text);
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

export async function reportCommand(args: string[], out: (text: string) => void, now = Date.now()): Promise<number> {
  const { values, positionals } = parse(args, REPORT_FLAGS);
  if (values.help) {
    out(`${reportHelp}\n`);
    return 0;
  }
  if (positionals.length) throw new UsageError(`memtide report: unexpected argument "${positionals[0]}" (write to a file with --out FILE)`);
  const format = formatOf(values.format, values.out);
  const sinceMs = timeFlag('since', values.since, now, now - 86_400_000);
  const untilMs = timeFlag('until', values.until, now, now);
  if (untilMs <= sinceMs) throw new UsageError(`--since (${new Date(sinceMs).toISOString()}) must be before --until (${new Date(untilMs).toISOString()})`);
  const config = loadConfig({ file: values.config, set: values.set ?? [] });
  const path = values.db ?? config.history.path;
  // Opening would create an empty database: a report of nothing, from a path the user probably mistyped.
  if (path !== ':memory:' && !existsSync(path)) {
    throw new ReportError(
      'MEMTIDE_ERR_REPORT_NO_HISTORY',
      `no history database at ${path} (history.path${values.db ? ', from --db' : ''}); run \`memtide run\` to record history, or pass --db FILE`,
    );
  }
  const store = HistoryStore.open(path, {
    rawRetentionMs: config.history.rawRetentionMs,
    aggregateBucketMs: config.history.aggregateBucketMs,
    aggregateRetentionMs: config.history.aggregateRetentionMs,
  });
  let text: string;
  try {
    text = renderReport(buildReport(store, { sinceMs, untilMs, nowMs: now, config }), format);
  } finally {
    store.close();
  }
  if (values.out === undefined || values.out === '-') {
    out(text);
  } else {
    writeAtomically(values.out, text);
    process.stderr.write(`wrote the ${format} report to ${values.out}\n`);
  }
  return 0;
}
