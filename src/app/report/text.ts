/** Shared wording and escaping of the renderers. */
import { PRESSURE_LEVELS, type PressureLevel } from '../../model.js';
import { formatBytes } from '../units.js';
import type { ComponentReport, MemoryReport } from './types.js';

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
