/** Text renderings for the CLI (tables people read in a terminal). */
import type { MemorySample, PressureLevel } from '../model.js';
import { formatBytes } from './units.js';

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? '').length))) ?? [];
  return rows
    .map((row) => row.map((cell, col) => (col === 0 ? cell.padEnd(widths[col] ?? 0) : cell.padStart(widths[col] ?? 0))).join('  '))
    .join('\n');
}

/** `memtide sample --format table`. */
export function sampleTable(sample: MemorySample, pressure: PressureLevel): string {
  const s = sample.system;
  const psi = s.psi ? `psi some ${s.psi.someAvg10.toFixed(1)}% full ${s.psi.fullAvg10.toFixed(1)}%` : 'psi n/a';
  const header = [
    `memory ${formatBytes(s.availableBytes)} available of ${formatBytes(s.totalBytes)}` +
      (s.cgroupLimitBytes !== null ? ` (cgroup limit ${formatBytes(s.cgroupLimitBytes)})` : '') +
      ` | swap ${formatBytes(s.swapUsedBytes)} / ${formatBytes(s.swapTotalBytes)} | ${psi} | pressure ${pressure}`,
  ];
  const rows = [['component', 'processes', 'rss', 'pss']];
  const components = Object.entries(sample.components).sort((a, b) => b[1].rssBytes - a[1].rssBytes);
  for (const [name, usage] of components) {
    rows.push([name, String(usage.processCount), formatBytes(usage.rssBytes), usage.pssBytes === null ? '-' : formatBytes(usage.pssBytes)]);
  }
  const cost = `sample cost ${sample.self.sampleCpuMs.toFixed(2)} ms CPU, ${sample.processes.length} processes`;
  return `${header.join('\n')}\n\n${table(rows)}\n\n${cost}\n`;
}
