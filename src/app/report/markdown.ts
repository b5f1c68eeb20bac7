/** `renderMarkdown`: the report as a Markdown document (tables, no charts). */
import { formatBytes, formatDuration } from '../units.js';
import {
  LEVEL_KEYS,
  actionStatus,
  actionTarget,
  actionsOf,
  actionsSummaryText,
  availableChangeText,
  beforeAfter,
  freedText,
  escapeMarkdown as md,
  iso,
  percentOf,
  slopeText,
  undoneText,
} from './text.js';
import type { ActionSummary, ByteStats, MemoryReport } from './types.js';

function row(cells: readonly string[]): string {
  return `| ${cells.join(' | ')} |`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [row(header), row(header.map(() => '---')), ...rows.map(row)];
}

const bytes = (stats: ByteStats | null, key: keyof ByteStats) => (stats ? formatBytes(stats[key]) : '-');

export function renderMarkdown(report: MemoryReport): string {
  const out: string[] = [];
  out.push('# Memory report', '');
  out.push(`Range ${iso(report.sinceMs)} to ${iso(report.untilMs)}, generated ${iso(report.generatedAtMs)}.`, '');

  out.push('## Components', '');
  if (report.components.length === 0) out.push('No component samples in the range.');
  else {
    out.push(
      ...table(
        ['Component', 'Current RSS', 'Peak RSS', 'Average RSS', 'Average PSS', 'Trend', 'Slope', 'Samples'],
        report.components.map((c) => [
          md(c.component),
          bytes(c.rss, 'currentBytes'),
          bytes(c.rss, 'peakBytes'),
          bytes(c.rss, 'averageBytes'),
          bytes(c.pss, 'averageBytes'),
          c.trend,
          slopeText(c),
          String(c.sampleCount),
        ]),
      ),
    );
  }
  out.push('', `Trend: Theil-Sen slope of RSS; growing / shrinking beyond ±${formatBytes(report.trendThresholdBytesPerHour)}/h.`, '');

  out.push('## System memory', '');
  const { system } = report;
  if (!system.available) out.push('No system samples in the range.');
  else {
    out.push(
      `Total ${system.totalBytes === null ? '-' : formatBytes(system.totalBytes)}; available now ${bytes(system.available, 'currentBytes')}, ` +
        `minimum ${bytes(system.available, 'minBytes')}, average ${bytes(system.available, 'averageBytes')} (${system.sampleCount} samples).`,
    );
  }
  out.push('');

  out.push('## Pressure timeline', '');
  const { pressure } = report;
  const span = pressure.toMs - pressure.fromMs;
  out.push(`From ${iso(pressure.fromMs)} to ${iso(pressure.toMs)}; level at the start: ${pressure.initialLevel ?? 'unknown'}.`, '');
  out.push(
    ...table(
      ['Level', 'Time', 'Share'],
      LEVEL_KEYS.filter((level) => level !== 'unknown' || pressure.timeByLevelMs.unknown > 0).map((level) => [
        level,
        formatDuration(pressure.timeByLevelMs[level]),
        percentOf(pressure.timeByLevelMs[level], span),
      ]),
    ),
    '',
  );
  if (pressure.events.length === 0) out.push('No pressure changes in the range.');
  for (const e of pressure.events) out.push(`- ${iso(e.atMs)} ${e.previous ?? 'start'} → **${e.level}**${e.reasons.length ? `: ${md(e.reasons.join('; '))}` : ''}`);
  if (pressure.eventsOmitted > 0) out.push(`- … and ${pressure.eventsOmitted} more changes`);
  out.push('');

  out.push('## Leak suspects', '');
  if (report.leakSuspects.length === 0) out.push('None: no component grew steadily.');
  for (const s of report.leakSuspects) {
    out.push(
      `- **${md(s.component)}** (suspect): +${formatBytes(s.slopeBytesPerHour)}/h, grew ${formatBytes(s.growthBytes)}, steadiness ${s.steadiness.toFixed(2)}` +
        (s.exhaustionAtMs === null ? '' : `; at this rate available memory runs out ${iso(s.exhaustionAtMs)}`),
    );
  }
  out.push('');

  out.push('## Alerts', '');
  const { alerts } = report;
  out.push(
    alerts.total === 0
      ? 'No alerts in the range.'
      : `${alerts.total} notifications (${alerts.firing} firing, ${alerts.resolved} resolved; critical ${alerts.bySeverity.critical}, warning ${alerts.bySeverity.warning}, info ${alerts.bySeverity.info}).`,
  );
  if (alerts.listed.length) {
    out.push('', ...table(['Time', 'Status', 'Severity', 'Title'], alerts.listed.map((a) => [iso(a.atMs), a.status, a.severity, md(a.title)])));
  }
  if (alerts.total > alerts.listed.length) out.push('', `… and ${alerts.total - alerts.listed.length} more.`);
  out.push('');

  out.push(...actionsSection(actionsOf(report)), '');

  out.push('## Suggestions', '');
  if (report.suggestions.length === 0) out.push('Nothing to suggest: no growth, no pressure, no held model memory.');
  report.suggestions.forEach((s, i) => {
    const saving = s.expectedSavingBytes === undefined ? 'saving unknown' : `saves about ${formatBytes(s.expectedSavingBytes)}`;
    out.push(`${i + 1}. ${md(s.action)} (${saving})`);
    if (s.command) out.push(`   - Command: \`${s.command.replaceAll('`', "'")}\``);
    out.push(`   - Why: ${md(s.reason)}`);
  });
  return `${out.join('\n')}\n`;
}

function actionsSection(actions: ActionSummary): string[] {
  const out = ['## Actions', '', actionsSummaryText(actions)];
  if (actions.total === 0) return out;
  out.push(
    '',
    ...table(
      ['Kind', 'Source', 'Count', 'Executed', 'Freed (measured)'],
      actions.byKind.map((k) => [md(k.kind), k.source, String(k.count), String(k.executed), k.freedBytes > 0 ? formatBytes(k.freedBytes) : '-']),
    ),
    '',
    ...table(
      ['Time', 'Source', 'Action', 'Level', 'Target', 'Executed', 'Target memory', 'Available memory', 'Undone', 'Why'],
      actions.listed.map((a) => [
        iso(a.atMs),
        a.source,
        md(a.kind),
        a.level ?? '-',
        md(actionTarget(a)),
        md(actionStatus(a)),
        `${beforeAfter(a.componentBytesBefore, a.componentBytesAfter, a.measuredAtMs)}${a.freedBytes === null ? '' : ` (${freedText(a)})`}`,
        `${beforeAfter(a.availableBytesBefore, a.availableBytesAfter, a.measuredAtMs)}${a.availableChangeBytes === null ? '' : ` (${availableChangeText(a)})`}`,
        undoneText(a),
        md(a.reason),
      ]),
    ),
  );
  if (actions.total > actions.listed.length) out.push('', `… and ${actions.total - actions.listed.length} earlier actions (counted above, not listed).`);
  if (actions.notExecuted > 0) out.push('', 'Observe-only actions were not executed: the memory after them is what happened without them.');
  return out;
}
