/**
 * `renderHtml`: ONE self-contained file: inline CSS and inline SVG charts,
 * no script, no network. Every piece of text from the data (component
 * names, alert titles, reasons) goes through `escapeHtml`.
 */
import { formatBytes, formatDuration } from '../units.js';
import { LEVEL_COLORS, MARKER_COLORS, lineChart, type ChartMarker } from './svg.js';
import {
  LEVEL_KEYS,
  actionStatus,
  actionTarget,
  actionTooltip,
  actionsOf,
  actionsSummaryText,
  availableChangeText,
  beforeAfter,
  chartDomain,
  freedText,
  escapeHtml as h,
  iso,
  percentOf,
  slopeText,
} from './text.js';
import type { ActionSummary, ByteStats, MemoryReport, ReportAction } from './types.js';

const CSS = `
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:820px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}th,td{padding:.25rem .5rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}.axis{font-size:11px;fill:#666}
.trend-growing{color:#c62828;font-weight:600}.trend-shrinking{color:#2e7d32}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
code{background:#f3f3f3;padding:0 .2em}.muted{color:#777}figure{margin:1rem 0}figcaption{font-weight:600}
.actions td{vertical-align:top;font-size:13px}.actions td:nth-child(2),.actions th:nth-child(2){text-align:left}
.actions .nowrap{white-space:nowrap}
.status-executed{color:#5e35b1;font-weight:600}.status-observe{color:#546e7a;font-style:italic}.status-failed{color:#c62828;font-weight:600}
tr.observe td{background:#f7f9fa}.freed{color:#2e7d32}.grew{color:#c62828}
`;

const PALETTE = ['#1565c0', '#6a1b9a', '#00838f', '#ef6c00', '#558b2f', '#ad1457', '#4e342e', '#283593'];

const bytes = (stats: ByteStats | null, key: keyof ByteStats) => (stats ? formatBytes(stats[key]) : '-');

function tableHtml(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const head = `<tr>${header.map((c) => `<th>${h(c)}</th>`).join('')}</tr>`;
  // Cells are HTML already (escaped by the caller), so markup such as a trend class can be used.
  return `<table>${head}${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</table>`;
}

function markerOf(a: ReportAction): ChartMarker {
  return { atMs: a.atMs, untilMs: a.undoneAtMs, style: !a.executed ? 'observe' : a.error === null ? 'executed' : 'failed', title: actionTooltip(a) };
}

const MARKER_LEGEND =
  ` <span class="muted">Actions: <span style="color:${MARKER_COLORS.executed}">▼</span> executed, ` +
  `<span style="color:${MARKER_COLORS.observe}">▽</span> observe-only, ` +
  `<span style="color:${MARKER_COLORS.failed}">▼</span> failed (hover for details)</span>`;

export function renderHtml(report: MemoryReport): string {
  const domain = chartDomain(report);
  const actions = actionsOf(report);
  const markersFor = (component: string | null) => actions.listed.filter((a) => component === null || a.target === component).map(markerOf);
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
      const markers = markersFor(c.component);
      body.push(
        `<figure><figcaption>${h(c.component)} <span class="muted">(${c.trend}, ${h(slopeText(c))})</span>${markers.length ? MARKER_LEGEND : ''}</figcaption>` +
          lineChart({ title: `${c.component} RSS`, ...domain, points: c.series, color: PALETTE[i % PALETTE.length] ?? '#1565c0', markers }) +
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
  const systemMarkers = markersFor(null);
  body.push(
    `<figure><figcaption>Available memory, with the pressure level below${systemMarkers.length ? MARKER_LEGEND : ''}</figcaption>${lineChart({
      title: 'system available memory',
      ...domain,
      points: system.series,
      color: '#2e7d32',
      ceilingBytes: system.totalBytes,
      band: pressure.segments,
      markers: systemMarkers,
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

  body.push(...actionsSection(actions));

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>memtide memory report ${h(iso(report.sinceMs))}</title><style>${CSS}</style></head>
<body>
${body.join('\n')}
</body></html>
`;
}

/** `2024-05-01<br>10:30:00.000Z`: the ISO time on two lines, so a narrow table stays readable. */
function dateAndTime(ms: number): string {
  const text = iso(ms);
  const t = text.indexOf('T');
  return t < 0 ? h(text) : `${h(text.slice(0, t))}<br>${h(text.slice(t + 1))}`;
}

function actionsSection(actions: ActionSummary): string[] {
  const out = ['<h2>Actions</h2>', `<p id="actions-summary">${h(actionsSummaryText(actions))}</p>`];
  if (actions.total === 0) return out;
  out.push(
    tableHtml(
      ['Kind', 'Source', 'Count', 'Executed', 'Freed (measured)'],
      actions.byKind.map((k) => [h(k.kind), h(k.source), String(k.count), String(k.executed), k.freedBytes > 0 ? h(formatBytes(k.freedBytes)) : '-']),
    ),
  );
  const head = ['Time', 'Action', 'Target memory', 'Available memory', 'Undone'].map((c) => `<th>${h(c)}</th>`).join('');
  const rows = actions.listed.map((a) => {
    const status = !a.executed ? 'observe' : a.error === null ? 'executed' : 'failed';
    // An observe-only action changed nothing: its change is what happened anyway, so it is not coloured as a result.
    const changeClass = status === 'observe' ? 'muted' : (a.freedBytes ?? 0) >= 0 ? 'freed' : 'grew';
    const change = a.freedBytes === null ? '' : `<br><span class="${changeClass}">${h(freedText(a))}</span>`;
    const cells = [
      `<span class="nowrap">${dateAndTime(a.atMs)}</span><br><span class="muted">${h(a.source)}${a.level ? ` · ${h(a.level)}` : ''}</span>`,
      `<strong>${h(a.kind)}</strong> ${h(actionTarget(a))}<br><span class="status-${status}">${h(actionStatus(a))}</span><br><span class="muted">${h(a.reason)}</span>`,
      `<span class="nowrap">${h(beforeAfter(a.componentBytesBefore, a.componentBytesAfter, a.measuredAtMs))}</span>${change}`,
      `<span class="nowrap">${h(beforeAfter(a.availableBytesBefore, a.availableBytesAfter, a.measuredAtMs))}</span>${a.availableChangeBytes === null ? '' : `<br>${h(availableChangeText(a))}`}`,
      a.undoneAtMs === null ? '-' : `<span class="nowrap">${dateAndTime(a.undoneAtMs)}</span><br><span class="muted">(after ${h(formatDuration(Math.max(0, a.undoneAtMs - a.atMs)))})</span>`,
    ];
    return `<tr class="${status}">${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  out.push(`<table class="actions"><tr>${head}</tr>${rows.join('')}</table>`);
  if (actions.total > actions.listed.length) out.push(`<p>… and ${actions.total - actions.listed.length} earlier actions (counted above, not listed or marked).</p>`);
  if (actions.notExecuted > 0) out.push('<p class="muted">Observe-only actions were not executed: the memory after them is what happened without them.</p>');
  out.push('<p class="muted">Each action is marked on its target component\'s chart and on the available-memory chart; a bar along the top shows how long it stayed in force.</p>');
  return out;
}
