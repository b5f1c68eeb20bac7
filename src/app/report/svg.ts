/**
 * Inline SVG line charts for the HTML report: no script, no external
 * resource, not even the xmlns URL (inline SVG in HTML5 needs none). Only
 * numbers and escaped text reach the markup.
 */
import type { PressureLevel } from '../../model.js';
import { formatBytes } from '../units.js';
import { escapeHtml, iso } from './text.js';
import type { ChartPoint, PressureSegment } from './types.js';

export const LEVEL_COLORS: Record<PressureLevel | 'unknown', string> = {
  unknown: '#d0d0d0',
  low: '#4caf50',
  medium: '#f2c12e',
  high: '#f57c00',
  critical: '#d32f2f',
};

export interface ChartOptions {
  title: string;
  fromMs: number;
  toMs: number;
  points: readonly ChartPoint[];
  color: string;
  /** A horizontal line, e.g. the total memory. */
  ceilingBytes?: number | null;
  /** A pressure band drawn under the plot. */
  band?: readonly PressureSegment[];
  /** Actions: a tick at their time (a thin line from the top of the plot with a triangle), with a tooltip. */
  markers?: readonly ChartMarker[];
}

/** An action on a chart: executed (filled, purple), observe-only (hollow, grey) or failed (red). */
export interface ChartMarker {
  atMs: number;
  /** Until when it was in force (undone), drawn as a bar along the top of the plot. */
  untilMs?: number | null;
  style: 'executed' | 'observe' | 'failed';
  /** The tooltip text (escaped here). */
  title: string;
}

export const MARKER_COLORS: Record<ChartMarker['style'], string> = { executed: '#5e35b1', observe: '#78909c', failed: '#c62828' };

const WIDTH = 760;
const PLOT_HEIGHT = 140;
const LEFT = 70;
const RIGHT = 10;
const TOP = 10;
const BAND = 12;

const n = (value: number) => (Number.isFinite(value) ? Number(value.toFixed(1)) : 0);

export function lineChart(options: ChartOptions): string {
  const { fromMs, toMs, points, color } = options;
  const hasBand = options.band !== undefined && options.band.length > 0;
  const height = TOP + PLOT_HEIGHT + (hasBand ? BAND + 4 : 0) + 22;
  const plotWidth = WIDTH - LEFT - RIGHT;
  const top = Math.max(1, options.ceilingBytes ?? 0, ...points.map((p) => p.maxBytes)) * 1.05;
  const x = (ms: number) => n(LEFT + ((ms - fromMs) / Math.max(1, toMs - fromMs)) * plotWidth);
  const y = (bytes: number) => n(TOP + PLOT_HEIGHT - (Math.max(0, bytes) / top) * PLOT_HEIGHT);
  const parts: string[] = [];
  parts.push(`<svg role="img" viewBox="0 0 ${WIDTH} ${height}" width="100%" aria-label="${escapeHtml(options.title)}">`);
  parts.push(`<title>${escapeHtml(options.title)}</title>`);
  parts.push(`<rect x="${LEFT}" y="${TOP}" width="${plotWidth}" height="${PLOT_HEIGHT}" fill="#fafafa" stroke="#ddd"/>`);
  for (const fraction of [0, 0.5, 1]) {
    const bytes = (top / 1.05) * fraction;
    parts.push(`<text x="${LEFT - 6}" y="${n(y(bytes) + 4)}" text-anchor="end" class="axis">${escapeHtml(formatBytes(bytes))}</text>`);
  }
  if (options.ceilingBytes) {
    parts.push(`<line x1="${LEFT}" x2="${LEFT + plotWidth}" y1="${y(options.ceilingBytes)}" y2="${y(options.ceilingBytes)}" stroke="#999" stroke-dasharray="4 3"/>`);
  }
  if (points.length > 0) {
    const upper = points.map((p) => `${x(p.atMs)},${y(p.maxBytes)}`);
    const lower = points.map((p) => `${x(p.atMs)},${y(p.minBytes)}`).reverse();
    parts.push(`<polygon points="${[...upper, ...lower].join(' ')}" fill="${color}" fill-opacity="0.15" stroke="none"/>`);
    const line = points.map((p) => `${x(p.atMs)},${y(p.bytes)}`).join(' ');
    parts.push(`<polyline points="${line}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
  }
  for (const m of options.markers ?? []) {
    if (m.atMs < fromMs || m.atMs > toMs) continue;
    const mx = x(m.atMs);
    const stroke = MARKER_COLORS[m.style];
    const fill = m.style === 'observe' ? '#fff' : stroke;
    const dash = m.style === 'observe' ? ' stroke-dasharray="3 2"' : '';
    const span =
      m.untilMs !== null && m.untilMs !== undefined && m.untilMs > m.atMs
        ? `<rect x="${mx}" y="${TOP}" width="${n(Math.max(1, x(Math.min(toMs, m.untilMs)) - mx))}" height="3" fill="${stroke}" fill-opacity="0.35"/>`
        : '';
    parts.push(
      `<g class="action action-${m.style}"><title>${escapeHtml(m.title)}</title>${span}` +
        `<rect x="${n(mx - 4)}" y="${TOP}" width="8" height="${PLOT_HEIGHT}" fill="${stroke}" fill-opacity="0"/>` +
        `<line x1="${mx}" x2="${mx}" y1="${TOP}" y2="${TOP + PLOT_HEIGHT}" stroke="${stroke}" stroke-opacity="0.45"${dash}/>` +
        `<path d="M${n(mx - 4)} ${TOP} L${n(mx + 4)} ${TOP} L${mx} ${TOP + 7} Z" fill="${fill}" stroke="${stroke}"/></g>`,
    );
  }
  let axisY = TOP + PLOT_HEIGHT;
  if (hasBand) {
    for (const s of options.band ?? []) {
      const x1 = x(Math.max(fromMs, s.fromMs));
      const x2 = x(Math.min(toMs, s.toMs));
      if (x2 <= x1) continue;
      const level = s.level ?? 'unknown';
      parts.push(`<rect x="${x1}" y="${axisY + 4}" width="${n(x2 - x1)}" height="${BAND}" fill="${LEVEL_COLORS[level]}"><title>${level}</title></rect>`);
    }
    axisY += BAND + 4;
  }
  parts.push(`<text x="${LEFT}" y="${axisY + 16}" class="axis">${escapeHtml(iso(fromMs))}</text>`);
  parts.push(`<text x="${WIDTH - RIGHT}" y="${axisY + 16}" text-anchor="end" class="axis">${escapeHtml(iso(toMs))}</text>`);
  parts.push('</svg>');
  return parts.join('');
}
