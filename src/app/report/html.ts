/**
 * `renderHtml`: ONE self-contained file: inline CSS and inline SVG charts,
 * no script, no network. Every piece of text from the data (component
 * names, alert titles, reasons) goes through `escapeHtml`.
 */
import { formatBytes, formatDuration } from '../units.js';
import { LEVEL_COLORS, lineChart } from './svg.js';
import { LEVEL_KEYS, chartDomain, escapeHtml as h, iso, percentOf, slopeText } from './text.js';
import type { ByteStats, MemoryReport } from './types.js';

const CSS = `
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:820px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}th,td{padding:.25rem .5rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}.axis{font-size:11px;fill:#666}
.trend-growing{color:#c62828;font-weight:600}.trend-shrinking{color:#2e7d32}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
code{background:#f3f3f3;padding:0 .2em}.muted{color:#777}figure{margin:1rem 0}figcaption{font-weight:600}
`;

const PALETTE = ['#1565c0', '#6a1b9a', '#00838f', '#ef6c00', '#558b2f', '#ad1457', '#4e342e', '#283593'];

const bytes = (stats: ByteStats | null, key: keyof ByteStats) => (stats ? formatBytes(stats[key]) : '-');

function tableHtml(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const head = `<tr>${header.map((c) => `<th>${h(c)}</th>`).join('')}</tr>`;
  // Cells are HTML already (escaped by the caller), so markup such as a trend class can be used.
  return `<table>${head}${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</table>`;
}

export function renderHtml(report: MemoryReport): string {
  const domain = chartDomain(report);
  const body: string[] = [];
  body.push(`<h1>Memory report</h1><p class="muted">Range ${h(iso(report.sinceMs))} to ${h(iso(report.untilMs))}, generated ${h(iso(report.generatedAtMs))}.</p>`);

  body.push('<h2>Suggestions</h2>');
  if (report.suggestions.length === 0) body.push('<p>Nothing to suggest: no growth, no pressure, no held model memory.</p>');
  else {
    body.push('<ol>');
    for (const s of report.suggestions) {
      const saving = s.expectedSavingBytes === undefined ? 'saving unknown' : `saves about ${formatBytes(s.expectedSavingBytes)}`;
      body.push(
        `<li><strong>${h(s.action)}</strong> <span class="muted">(${h(saving)})</span>` +
          (s.command ? `<br>Command: <code>${h(s.command)}</code>` : '') +
          `<br><span class="muted">${h(s.reason)}</span></li>`,
      );
    }
    body.push('</ol>');
  }

  body.push('<h2>Components</h2>');
  if (report.components.length === 0) body.push('<p>No component samples in the range.</p>');
  else {
    body.push(
      tableHtml(
        ['Component', 'Current', 'Peak', 'Average', 'Avg PSS', 'Trend', 'Slope'],
        report.components.map((c) => [
          h(c.component),
          bytes(c.rss, 'currentBytes'),
          bytes(c.rss, 'peakBytes'),
          bytes(c.rss, 'averageBytes'),
          bytes(c.pss, 'averageBytes'),
          `<span class="trend-${c.trend}">${c.trend}</span>`,
          h(slopeText(c)),
        ]),
      ),
    );
    body.push(`<p class="muted">RSS; the line is the average of each point, the shaded band its minimum to maximum. Trend: Theil-Sen slope beyond ±${h(formatBytes(report.trendThresholdBytesPerHour))}/h.</p>`);
    report.components.forEach((c, i) => {
      body.push(
        `<figure><figcaption>${h(c.component)} <span class="muted">(${c.trend}, ${h(slopeText(c))})</span></figcaption>` +
          lineChart({ title: `${c.component} RSS`, ...domain, points: c.series, color: PALETTE[i % PALETTE.length] ?? '#1565c0' }) +
          '</figure>',
      );
    });
  }

  body.push('<h2>System memory and pressure</h2>');
  const { system, pressure } = report;
  body.push(
    system.available
      ? `<p>Total ${system.totalBytes === null ? '-' : h(formatBytes(system.totalBytes))}; available now ${bytes(system.available, 'currentBytes')}, minimum ${bytes(system.available, 'minBytes')}, average ${bytes(system.available, 'averageBytes')}.</p>`
      : '<p>No system samples in the range.</p>',
  );
  body.push(
    `<figure><figcaption>Available memory, with the pressure level below</figcaption>${lineChart({
      title: 'system available memory',
      ...domain,
      points: system.series,
      color: '#2e7d32',
      ceilingBytes: system.totalBytes,
      band: pressure.segments,
    })}</figure>`,
  );
  const span = pressure.toMs - pressure.fromMs;
  body.push(
    tableHtml(
      ['Level', 'Time', 'Share'],
      LEVEL_KEYS.filter((level) => level !== 'unknown' || pressure.timeByLevelMs.unknown > 0).map((level) => [
        `<span class="swatch" style="background:${LEVEL_COLORS[level]}"></span>${level}`,
        h(formatDuration(pressure.timeByLevelMs[level])),
        h(percentOf(pressure.timeByLevelMs[level], span)),
      ]),
    ),
  );
  if (pressure.events.length) {
    body.push('<ul>');
    for (const e of pressure.events) body.push(`<li>${h(iso(e.atMs))} ${h(e.previous ?? 'start')} → <strong>${h(e.level)}</strong> <span class="muted">${h(e.reasons.join('; '))}</span></li>`);
    if (pressure.eventsOmitted) body.push(`<li>… and ${pressure.eventsOmitted} more changes</li>`);
    body.push('</ul>');
  } else body.push('<p>No pressure changes in the range.</p>');

  body.push('<h2>Leak suspects</h2>');
  if (report.leakSuspects.length === 0) body.push('<p>None: no component grew steadily.</p>');
  else {
    body.push('<ul>');
    for (const s of report.leakSuspects) {
      body.push(
        `<li><strong>${h(s.component)}</strong> (suspect): +${h(formatBytes(s.slopeBytesPerHour))}/h, grew ${h(formatBytes(s.growthBytes))}, steadiness ${s.steadiness.toFixed(2)}` +
          (s.exhaustionAtMs === null ? '' : `; at this rate available memory runs out ${h(iso(s.exhaustionAtMs))}`) +
          '</li>',
      );
    }
    body.push('</ul>');
  }

  body.push('<h2>Alerts</h2>');
  const { alerts } = report;
  if (alerts.total === 0) body.push('<p>No alerts in the range.</p>');
  else {
    body.push(`<p>${alerts.total} notifications: ${alerts.firing} firing, ${alerts.resolved} resolved; critical ${alerts.bySeverity.critical}, warning ${alerts.bySeverity.warning}, info ${alerts.bySeverity.info}.</p>`);
    body.push(tableHtml(['Time', 'Status', 'Severity', 'Title'], alerts.listed.map((a) => [h(iso(a.atMs)), h(a.status), h(a.severity), h(a.title)])));
    if (alerts.total > alerts.listed.length) body.push(`<p>… and ${alerts.total - alerts.listed.length} more.</p>`);
  }

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>memtide memory report ${h(iso(report.sinceMs))}</title><style>${CSS}</style></head>
<body>
${body.join('\n')}
</body></html>
`;
}
