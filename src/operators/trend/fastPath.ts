/**
 * The fast path, for leaks too steep to wait for the batch tolerance (600
 * MB/h must be reported within 30 minutes): growth over the last
 * fast.windowMs at fast.minRate or more, on the running minimum of the floors
 * (known excursions left out), steady in every quarter (a batch allocates
 * over minutes and then stops; a leak does not), not slowing down over the
 * window nor over twice the window (a warm-up's bend shows better on more of
 * it), and no step inside the window.
 */
import type { Detection, EvaluationParams } from './evaluationParams.js';
import { runningFloor, type Floors } from './floors.js';
import { mannKendall } from './mannKendall.js';
import { fitSlope, halves, slowsDown } from './windowStats.js';

export function fastPath(floors: Floors, now: number, p: EvaluationParams, threshold: number): Detection | null {
  const f = p.fast;
  const from = now - f.windowMs;
  if (floors.length === 0 || (floors.times[0] as number) > from + f.windowMs * 0.1) return null;
  const series = runningFloor(floors, from, f.floorSpanMs, threshold);
  if (series === null || series.steps > 0) return null;
  if (!(mannKendall(series.values).z >= f.z)) return null;
  const fit = fitSlope(series);
  if (!(fit.slope >= f.minRate)) return null;
  const len = series.length;
  for (let s = 0; s < f.segments; s++) {
    const part = fitSlope(series, Math.floor((s * len) / f.segments), Math.floor(((s + 1) * len) / f.segments));
    if (!(part.slope >= f.segmentFraction * fit.slope)) return null;
  }
  for (const span of [f.windowMs, 2 * f.windowMs]) {
    const longer = span === f.windowMs ? series : runningFloor(floors, now - span, f.floorSpanMs, threshold);
    const h = longer === null ? null : halves(longer);
    if (h !== null && slowsDown(h.first, h.second, p.decelerationRatio, p.decelerationZ)) return null;
  }
  return { path: 'fast', slope: fit.slope, z: fit.z, spanMs: f.windowMs };
}
