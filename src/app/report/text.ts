/** Shared wording and escaping of the renderers. */
import { PRESSURE_LEVELS, type PressureLevel } from '../../model.js';
import { formatBytes, formatDuration } from '../units.js';
import { emptyActionSummary } from './actions.js';
import type { ActionSummary, ComponentReport, MemoryReport, ReportAction } from './types.js';

export const LEVEL_KEYS = ['unknown', ...PRESSURE_LEVELS] as const satisfies readonly (PressureLevel | 'unknown')[];

export function iso(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

export function slopeText(c: ComponentReport): string {
  return c.slopeBytesPerHour === null ? 'n/a (too short)' : `${c.slopeBytesPerHour >= 0 ? '+' : ''}${formatBytes(c.slopeBytesPerHour)}/h`;
}

export function percentOf(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-';
}

/** The time span every chart shares: the data's span, so charts line up and are not squeezed into an empty range. */
export function chartDomain(report: MemoryReport): { fromMs: number; toMs: number } {
  let fromMs = report.pressure.fromMs;
  let toMs = report.pressure.toMs;
  for (const c of report.components) {
    fromMs = Math.min(fromMs, c.firstMs);
    toMs = Math.max(toMs, c.lastMs);
  }
  return toMs > fromMs ? { fromMs, toMs } : { fromMs: report.sinceMs, toMs: report.untilMs };
}

/** Text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/**
 * Text for Markdown: Markdown's own punctuation backslash-escaped (so a name
 * cannot open emphasis, a link or code, or break a table), then `& < >` as
 * named entities (Markdown passes raw HTML through, so a name must not
 * become a tag).
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/[\\`*_{}[\]|~]/g, (ch) => `\\${ch}`)
    .replace(/[&<>]/g, (ch) => (ch === '&' ? '&amp;' : ch === '<' ? '&lt;' : '&gt;'))
    .replace(/[\r\n]+/g, ' ');
}

// --- actions ------------------------------------------------------------------------------------

/** A report saved before actions were reported (version 1) renders with an empty section. */
export function actionsOf(report: MemoryReport): ActionSummary {
  return (report as Partial<MemoryReport>).actions ?? emptyActionSummary();
}

/** `ollama: llama3.1:8b (5.2 GiB)`, the target alone, the detail alone, or `-`. */
export function actionTarget(a: ReportAction): string {
  if (a.target !== null && a.detail !== null) return `${a.target}: ${a.detail}`;
  return a.target ?? a.detail ?? '-';
}

/** `executed`, `failed: <why>`, or `observe-only: not executed`. */
export function actionStatus(a: ReportAction): string {
  if (!a.executed) return 'observe-only: not executed';
  return a.error === null ? 'executed' : `failed: ${a.error}`;
}

/** `4.0 GiB → 1.2 GiB`; `4.0 GiB → not measured` before the settle time; `-` without a reading. */
export function beforeAfter(before: number | null, after: number | null, measuredAtMs: number | null): string {
  if (before === null && after === null) return measuredAtMs === null ? '-' : 'not read';
  const afterText = after !== null ? formatBytes(after) : measuredAtMs === null ? 'not measured' : 'not read';
  return `${before === null ? 'not read' : formatBytes(before)} → ${afterText}`;
}

export function signedBytes(bytes: number): string {
  return `${bytes > 0 ? '+' : bytes < 0 ? '-' : '±'}${formatBytes(Math.abs(bytes))}`;
}

/** The target component's change: `freed 2.8 GiB`, `grew 100 MiB`, `no change`, or `-`. */
export function freedText(a: ReportAction): string {
  if (a.freedBytes === null) return '-';
  return a.freedBytes > 0 ? `freed ${formatBytes(a.freedBytes)}` : a.freedBytes < 0 ? `grew ${formatBytes(-a.freedBytes)}` : 'no change';
}

export function availableChangeText(a: ReportAction): string {
  return a.availableChangeBytes === null ? '-' : signedBytes(a.availableChangeBytes);
}

/** `2024-05-01T10:30:00.000Z (after 30m)`, or `-` while in force or for a one-shot action. */
export function undoneText(a: ReportAction): string {
  return a.undoneAtMs === null ? '-' : `${iso(a.undoneAtMs)} (after ${formatDuration(Math.max(0, a.undoneAtMs - a.atMs))})`;
}

/** One tooltip line per action (the HTML chart markers). */
export function actionTooltip(a: ReportAction): string {
  const parts = [`${iso(a.atMs)} ${a.source} ${a.kind}${a.level ? ` at ${a.level}` : ''}`, actionTarget(a), actionStatus(a)];
  if (a.componentBytesBefore !== null || a.componentBytesAfter !== null) parts.push(`${a.target ?? 'component'} ${beforeAfter(a.componentBytesBefore, a.componentBytesAfter, a.measuredAtMs)} (${freedText(a)})`);
  if (a.availableChangeBytes !== null) parts.push(`available ${availableChangeText(a)}`);
  if (a.undoneAtMs !== null) parts.push(`undone ${iso(a.undoneAtMs)}`);
  parts.push(a.reason);
  return parts.join('\n');
}

/**
 * The summary line: `12 actions: 9 executed (1 failed), 3 observe-only (would
 * have acted 3 times); measured after 7 executed actions: 4.1 GiB freed in
 * their target components, available memory +3.9 GiB.`
 */
export function actionsSummaryText(s: ActionSummary): string {
  if (s.total === 0) return 'No actions in the range.';
  const parts: string[] = [`${s.total} action${s.total === 1 ? '' : 's'}: ${s.executed} executed${s.failed ? ` (${s.failed} failed)` : ''}`];
  if (s.notExecuted > 0) parts[0] += `, ${s.notExecuted} observe-only (would have acted ${s.notExecuted} time${s.notExecuted === 1 ? '' : 's'})`;
  if (s.undone > 0) parts[0] += `, ${s.undone} undone`;
  if (s.measured === 0) parts.push(s.executed > 0 ? 'no executed action was measured after it' : 'nothing was executed, so nothing was freed');
  else {
    parts.push(
      `measured after ${s.measured} executed action${s.measured === 1 ? '' : 's'}: ${formatBytes(s.freedBytes)} freed in their target components` +
        (s.grewBytes > 0 ? ` (and ${formatBytes(s.grewBytes)} grown where a target grew)` : '') +
        `, available memory ${signedBytes(s.availableChangeBytes)}`,
    );
  }
  return `${parts.join('; ')}.`;
}
