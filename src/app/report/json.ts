/** `renderJson`: the report data itself (it is plain JSON), pretty-printed. */
import type { MemoryReport } from './types.js';

export function renderJson(report: MemoryReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
