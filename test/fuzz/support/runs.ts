/**
 * numRuns for the fuzz properties, sized so all of test/fuzz stays well under
 * a minute on the 2-core CI machine. For a deeper search, scale them:
 * `FUZZ_SCALE=20 npx vitest run test/fuzz` (not a MEMTIDE_* name: that prefix
 * belongs to the config's environment layer). fast-check prints the seed and
 * path of any failure; `fc.assert(property, { seed, path })` replays it.
 */
export function runs(base: number): number {
  const scale = Number(process.env.FUZZ_SCALE ?? '1');
  return Math.max(1, Math.round(base * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}
