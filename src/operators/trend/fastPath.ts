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
import { HEAP, type Alloc } from './scratch.js';
import { theilSenSlope } from './theilSen.js';
import { fitSlope, halves, slowsDown } from './windowStats.js';

/** The detection, if any, and the Mann-Kendall z of the fast window (0 when it has a step or too few floors). */
export function fastPath(floors: Floors, now: number, p: EvaluationParams, threshold: number, alloc: Alloc = HEAP): { detection: Detection | null; z: number } {
  const f = p.fast;
  const from = now - f.windowMs;
  const none = (z: number) => ({ detection: null, z });
  if (floors.length === 0 || (floors.times[0] as number) > from + f.windowMs * 0.1) return none(0);
  const series = runningFloor(floors, from, f.floorSpanMs, threshold, alloc);
  if (series === null || series.steps > 0) return none(0);
  const z = mannKendall(series.values, 0, series.length).z;
  if (!(z >= f.z)) return none(z);
  // one segment (no cut above): the blocked test's z is the plain one, known already
  const fit = fitSlope(series, 0, series.length, z);
  if (!(fit.slope >= f.minRate)) return none(z);
  const len = series.length;
  for (let s = 0; s < f.segments; s++) {
    const partStart = Math.floor((s * len) / f.segments);
    const partEnd = Math.floor(((s + 1) * len) / f.segments);
    // the slope of each part (no slope from fewer than 3 points), not its error or test
    const slope = partEnd - partStart < 3 ? Number.NaN : theilSenSlope(series.times, series.values, partStart, partEnd, series.segments);
    if (!(slope >= f.segmentFraction * fit.slope)) return none(z);
  }
  for (const span of [f.windowMs, 2 * f.windowMs]) {
    const longer = span === f.windowMs ? series : runningFloor(floors, now - span, f.floorSpanMs, threshold, alloc);
    const h = longer === null ? null : halves(longer);
    if (h !== null && slowsDown(h.first, h.second, p.decelerationRatio, p.decelerationZ)) return none(z);
  }
  return { detection: { path: 'fast', slope: fit.slope, z: fit.z, spanMs: f.windowMs }, z };
}
