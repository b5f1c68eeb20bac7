import { readTrace } from '../../sources/traceCsv.js';
import { replayTrace, type ReplayResult } from '../../streams/traceReplay.js';
import { formatBytes, formatDuration } from '../units.js';
import { loadConfig } from '../config.js';
import { CONFIG_FLAGS, UsageError, oneOf, parse } from '../cliArgs.js';

export const analyzeHelp = `memtide analyze FILE.csv [--format json|text] [--config FILE] [--set KEY=VALUE]

Replays a trace (timestamp_ms,component,rss_bytes; system memory as
system.total / system.available rows — the format of \`memtide export\`)
through the live engine's operators in virtual time, with the trace's own
timestamps, and prints
  { "leaks": [ { component, detectedAtMs, slopeBytesPerHour, confidence } ],
    "pressure": [ { atMs, level } ], "alerts": [ ... ] }
A malformed row is an error naming its line; then nothing else is printed.`;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function analysisText(result: ReplayResult, file: string): string {
  const { stats } = result;
  const span = stats.firstMs !== null && stats.lastMs !== null ? formatDuration(stats.lastMs - stats.firstMs) : '0s';
  const lines = [`${file}: ${stats.rows} rows, ${stats.samples} samples over ${span}`, ''];
  lines.push(result.leaks.length ? 'Leaks:' : 'Leaks: none');
  for (const leak of result.leaks) {
    lines.push(`  ${leak.component}: ${formatBytes(leak.slopeBytesPerHour)}/h from ${iso(leak.detectedAtMs)} (confidence ${leak.confidence.toFixed(2)})`);
  }
  lines.push('', result.pressure.length ? 'Pressure:' : 'Pressure: unknown (no system rows)');
  for (const p of result.pressure) lines.push(`  ${iso(p.atMs)} ${p.level}`);
  lines.push('', result.alerts.length ? 'Alerts:' : 'Alerts: none');
  for (const a of result.alerts) {
    lines.push(`  ${iso(a.atMs)} ${a.status.padEnd(8)} ${a.severity.padEnd(8)} ${a.title}`);
    for (const r of a.recommendations) lines.push(`      - ${r.action}${r.command ? ` (${r.command})` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function analyzeCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parse(args, { ...CONFIG_FLAGS, format: { type: 'string', short: 'f' } });
  if (values.help) {
    out(`${analyzeHelp}\n`);
    return 0;
  }
  const format = oneOf('format', values.format, ['json', 'text'] as const, 'json');
  const [file, ...rest] = positionals;
  if (!file || rest.length) throw new UsageError('memtide analyze: give exactly one trace file');
  const config = loadConfig({ file: values.config, set: values.set ?? [] });
  // Everything is collected first: a bad row later in the file must not leave half an answer printed.
  const result = await replayTrace(readTrace(file), config);
  if (format === 'text') {
    out(analysisText(result, file));
  } else {
    const { leaks, pressure, alerts } = result;
    out(`${JSON.stringify({ leaks, pressure, alerts }, null, 2)}\n`);
  }
  return 0;
}
