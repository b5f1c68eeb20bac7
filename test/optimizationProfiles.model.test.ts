/**
 * Model-based test of the profile layer in the live config: file edits
 * (reloaded), runtime patches of the level and of low-memory mode, and
 * clearing those patches, in any order. The model holds what the user wrote
 * and the expected value of a few keys per profile, written out here (not
 * read from the profile table) so a change to the table or to the layering
 * that moves these values fails the test.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { createLiveConfig, type LiveConfig } from '../src/app/liveConfig.js';
import { valueAt, type ProfileName } from '../src/app/optimizationProfiles.js';

const dir = mkdtempSync(join(tmpdir(), 'memtide-profiles-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Level = 'basic' | 'aggressive' | 'maximum';
const LEVELS: readonly Level[] = ['basic', 'aggressive', 'maximum'];

/** Keys the file may set; the first ones are watched for their effective value. */
const WATCHED = ['models.idleTimeoutMs', 'sampling.intervalMs', 'models.maxConcurrent', 'server.updateIntervalMs'] as const;
type Watched = (typeof WATCHED)[number];

/** The expected value of each watched key under each profile (docs/optimization.md). */
const EXPECTED: Record<Watched, Record<ProfileName, number>> = {
  'models.idleTimeoutMs': { basic: 60_000, aggressive: 30_000, maximum: 15_000, lowMemory: 15_000 },
  'sampling.intervalMs': { basic: 1_000, aggressive: 1_000, maximum: 1_000, lowMemory: 2_000 },
  'models.maxConcurrent': { basic: 4, aggressive: 4, maximum: 4, lowMemory: 1 },
  'server.updateIntervalMs': { basic: 1_000, aggressive: 1_000, maximum: 2_000, lowMemory: 5_000 },
};

/** Values a user may write for a watched key, as written and in ms/counts. */
const FILE_VALUES: Record<Watched, ReadonlyArray<[written: number | string, value: number]>> = {
  'models.idleTimeoutMs': [['10m', 600_000], [15_000, 15_000], ['5s', 5_000]],
  'sampling.intervalMs': [[500, 500], ['2s', 2_000]],
  'models.maxConcurrent': [[2, 2], [1, 1], [8, 8]],
  'server.updateIntervalMs': [['250ms', 250], [5_000, 5_000]],
};

interface Model {
  /** What the file holds: watched keys (their value in ms/counts) and the optimization keys. */
  file: Map<Watched, number>;
  fileLevel?: Level;
  fileLowMemory?: boolean;
  /** Runtime patches. */
  level?: Level;
  lowMemory?: boolean;
}

interface Real {
  live: LiveConfig;
  path: string;
  /** The file's JSON as the user wrote it. */
  written: Record<string, unknown>;
}

const profileOf = (m: Model): ProfileName => ((m.lowMemory ?? m.fileLowMemory ?? false) ? 'lowMemory' : (m.level ?? m.fileLevel ?? 'basic'));

function check(m: Model, r: Real): void {
  const config = r.live.current();
  const profile = profileOf(m);
  expect(config.optimization.level).toBe(m.level ?? m.fileLevel ?? 'basic');
  expect(config.optimization.lowMemory).toBe(m.lowMemory ?? m.fileLowMemory ?? false);
  for (const key of WATCHED) {
    expect(valueAt(config, key), `${key} under ${profile}`).toBe(m.file.get(key) ?? EXPECTED[key][profile]);
  }
  // Shadowed: exactly the watched keys the file sets to something other than the profile's value, blamed on the file.
  const shadowed = r.live
    .profileShadows()
    .filter((s) => (WATCHED as readonly string[]).includes(s.path))
    .map((s) => [s.path, s.yours, s.profile, s.origin])
    .sort();
  const expected = WATCHED.filter((key) => m.file.has(key) && m.file.get(key) !== EXPECTED[key][profile]).map((key) => [
    key,
    m.file.get(key),
    EXPECTED[key][profile],
    r.path,
  ]);
  expected.sort();
  expect(shadowed).toEqual(expected);
}

function nested(values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [dotted, value] of Object.entries(values)) {
    const [section, key] = dotted.split('.') as [string, string];
    (out[section] ??= {})[key] = value;
  }
  return out;
}

/** Edits the file (a key to a value, or removes it) and reloads, as the watcher would. */
class SetFileValue implements fc.Command<Model, Real> {
  constructor(
    readonly key: Watched | 'optimization.level' | 'optimization.lowMemory',
    readonly written: number | string | boolean | undefined,
    readonly value: number | string | boolean | undefined,
  ) {}
  check = () => true;
  run(m: Model, r: Real): void {
    if (this.written === undefined) delete r.written[this.key];
    else r.written[this.key] = this.written;
    writeFileSync(r.path, JSON.stringify(nested(r.written)));
    expect(r.live.reload()).toBeNull();
    if (this.key === 'optimization.level') m.fileLevel = this.value as Level | undefined;
    else if (this.key === 'optimization.lowMemory') m.fileLowMemory = this.value as boolean | undefined;
    else if (this.value === undefined) m.file.delete(this.key);
    else m.file.set(this.key, this.value as number);
    check(m, r);
  }
  toString = () => `file ${this.key} = ${JSON.stringify(this.written) ?? '(removed)'}`;
}

class PatchLevel implements fc.Command<Model, Real> {
  constructor(readonly level: Level) {}
  check = () => true;
  run(m: Model, r: Real): void {
    r.live.patch({ optimization: { level: this.level } }, 'POST /api/actions/optimization-level');
    m.level = this.level;
    check(m, r);
  }
  toString = () => `patch level ${this.level}`;
}

class PatchLowMemory implements fc.Command<Model, Real> {
  constructor(readonly enabled: boolean) {}
  check = () => true;
  run(m: Model, r: Real): void {
    r.live.patch({ optimization: { lowMemory: this.enabled } }, 'POST /api/actions/low-memory');
    m.lowMemory = this.enabled;
    check(m, r);
  }
  toString = () => `patch lowMemory ${this.enabled}`;
}

class ClearPatch implements fc.Command<Model, Real> {
  constructor(readonly key: 'level' | 'lowMemory') {}
  check = () => true;
  run(m: Model, r: Real): void {
    r.live.patch({ optimization: { [this.key]: null } }, 'PATCH /api/config');
    delete m[this.key];
    check(m, r);
  }
  toString = () => `clear patch ${this.key}`;
}

describe('the profile layer, model-based', () => {
  it('file edits, level and low-memory patches and their removal agree with "your settings, else the selected profile"', () => {
    const fileValue = fc.oneof(
      ...WATCHED.map((key) =>
        fc.option(fc.constantFrom(...FILE_VALUES[key]), { nil: undefined }).map((pair) => new SetFileValue(key, pair?.[0], pair?.[1])),
      ),
      fc.option(fc.constantFrom(...LEVELS), { nil: undefined }).map((level) => new SetFileValue('optimization.level', level, level)),
      fc.option(fc.boolean(), { nil: undefined }).map((on) => new SetFileValue('optimization.lowMemory', on, on)),
    );
    const commands = [
      fileValue,
      fc.constantFrom(...LEVELS).map((level) => new PatchLevel(level)),
      fc.boolean().map((on) => new PatchLowMemory(on)),
      fc.constantFrom('level' as const, 'lowMemory' as const).map((key) => new ClearPatch(key)),
    ];
    let run = 0;
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 30 }), (cmds) => {
        run += 1;
        const path = join(dir, `memtide-${run}.json`);
        writeFileSync(path, '{}');
        const live = createLiveConfig({ env: {}, file: path, watch: false });
        try {
          fc.modelRun(() => ({ model: { file: new Map() }, real: { live, path, written: {} } }), cmds);
        } finally {
          live.stop();
        }
      }),
      { numRuns: 80 },
    );
  });
});
