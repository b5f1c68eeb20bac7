/**
 * Optimization profiles: every profile validates, basic is the schema
 * defaults, tighter profiles never cost more, the user's own settings win,
 * runtime level changes apply (and revert) their profile, observe-only
 * reaches the model governor, and origins name the right layer.
 */
import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  loadConfig,
  profileShadows,
  resolveConfig,
  settingOrigin,
  validateLayers,
  type ConfigLayer,
  type MemtideConfig,
} from '../src/app/config.js';
import { configSchema } from '../src/app/configSchema.js';
import { createLiveConfig } from '../src/app/liveConfig.js';
import {
  PROFILE_NAMES,
  PROFILE_ROWS,
  profileFragment,
  profileOrigin,
  profileShadowsIn,
  selectProfile,
  valueAt,
  type ProfileName,
  type ProfileRow,
} from '../src/app/optimizationProfiles.js';
import { configFiles, issuesOf } from './support/configFiles.js';

const { write: tempFile } = configFiles('memtide-profiles-test-');

const load = (options: Parameters<typeof loadConfig>[0] = {}) => loadConfig({ env: {}, ...options });
const layer = (values: unknown, origin = 'test file'): ConfigLayer => ({ origin, values: values as ConfigLayer['values'] });
const profileAlone = (name: ProfileName, observeOnly = false) =>
  validateLayers([layer(profileFragment({ name, observeOnly }), profileOrigin(name))]);

/**
 * A setting as the amount of memory-costing work it allows, so profiles can
 * be compared: `transcription.highConcurrency: null` means half of maxConcurrent, at least 1.
 */
function effective(config: MemtideConfig, row: ProfileRow): number {
  if (row.path === 'transcription.highConcurrency') {
    return config.transcription.highConcurrency ?? Math.max(1, Math.floor(config.transcription.maxConcurrent / 2));
  }
  if (row.path === 'models.numBatch') return config.models.numBatch ?? 512; // null: Ollama's default
  return Number(valueAt(config, row.path));
}

describe('the profiles', () => {
  it('every profile validates on its own, with and without observe-only, and sets exactly its values', () => {
    for (const name of PROFILE_NAMES) {
      for (const observeOnly of [false, true]) {
        const config = profileAlone(name, observeOnly);
        for (const row of PROFILE_ROWS) expect(valueAt(config, row.path), `${name} ${row.path}`).toEqual(row.profiles[name].value);
        expect(config.models.observeOnly).toBe(observeOnly);
      }
    }
  });

  it('every row names a real config key and has a one-line reason for every profile', () => {
    const defaults = configSchema.parse({});
    for (const row of PROFILE_ROWS) {
      expect(valueAt(defaults, row.path), row.path).not.toBeUndefined();
      for (const name of PROFILE_NAMES) {
        expect(row.profiles[name].why.length, `${row.path} ${name}`).toBeGreaterThan(10);
        expect(row.profiles[name].why).not.toMatch(/\n/);
      }
    }
    expect(new Set(PROFILE_ROWS.map((r) => r.path)).size).toBe(PROFILE_ROWS.length);
  });

  it('basic is the schema defaults: choosing it (or nothing) changes nothing', () => {
    const defaults = configSchema.parse({});
    expect(profileAlone('basic')).toEqual(defaults);
    expect(load()).toEqual(defaults);
    expect(load({ set: ['optimization.level=basic'] })).toEqual(configSchema.parse({ optimization: { level: 'basic' } }));
  });

  it('is monotone: a tighter profile never raises a memory-costing setting, and each level tightens something', () => {
    for (let i = 1; i < PROFILE_NAMES.length; i += 1) {
      const looser = profileAlone(PROFILE_NAMES[i - 1]!);
      const tighter = profileAlone(PROFILE_NAMES[i]!);
      let tightened = 0;
      for (const row of PROFILE_ROWS) {
        const [a, b] = [effective(looser, row), effective(tighter, row)];
        const what = `${row.path}: ${PROFILE_NAMES[i - 1]} ${a}, ${PROFILE_NAMES[i]} ${b}`;
        if (row.saves === 'lower') expect(b, what).toBeLessThanOrEqual(a);
        else expect(b, what).toBeGreaterThanOrEqual(a);
        if (a !== b) tightened += 1;
      }
      expect(tightened, `${PROFILE_NAMES[i]} tightens nothing`).toBeGreaterThan(0);
    }
  });

  it('stays sane for an 8 GB laptop running Meetily', () => {
    for (const name of PROFILE_NAMES) {
      const config = profileAlone(name);
      // Chunks of at least 10 s: whisper.cpp works on 30 s windows and loses context on tiny ones.
      expect(config.audio.chunkSeconds).toBeGreaterThanOrEqual(10);
      // A Meetily summary is a burst of back-to-back requests: idle timeouts of seconds keep it on one load.
      expect(config.models.idleTimeoutMs).toBeGreaterThanOrEqual(10_000);
      expect(config.models.idleTimeoutMs).toBeLessThanOrEqual(5 * 60_000);
      expect(config.models.pressureGraceMs).toBeLessThanOrEqual(config.models.idleTimeoutMs);
      // The whisper model must outlive a few chunk periods, or live audio reloads it between chunks.
      expect(config.transcription.idleUnloadMs).toBeGreaterThanOrEqual(2 * config.audio.chunkSeconds * 1000);
      expect(config.sampling.intervalMs).toBeLessThanOrEqual(2_000);
    }
    const low = profileAlone('lowMemory');
    expect(low.models.maxConcurrent).toBe(1);
    expect(low.transcription.maxConcurrent).toBe(1);
    expect(low.transcription.maxQueuedChunks).toBe(1);
    expect(low.sampling.intervalMs).toBe(2_000);
    expect(low.server.updateIntervalMs).toBe(5_000);
    // Batch transcription yields to the summary model from aggressive on; basic starts imports at once, as before.
    expect(PROFILE_NAMES.map((name) => profileAlone(name).optimization.batchYield.enabled)).toEqual([false, true, true, true]);
    expect(load({ set: ['optimization.level=maximum', 'optimization.batchYield.enabled=false'] }).optimization.batchYield).toEqual({ enabled: false, idleAfterMs: 20_000, maxHoldMs: 900_000 });
  });

  it('low-memory mode wins over the level; observe-only rides along', () => {
    expect(selectProfile({ level: 'basic', lowMemory: true, observeOnly: false })).toEqual({ name: 'lowMemory', observeOnly: false });
    expect(selectProfile({ level: 'aggressive', lowMemory: false, observeOnly: true })).toEqual({ name: 'aggressive', observeOnly: true });
    expect(load({ set: ['optimization.level=basic', 'optimization.lowMemory=true'] }).models.maxConcurrent).toBe(1);
  });
});

describe('layering', () => {
  it('the level applies to what the user left at its default; explicit settings win, from any layer', () => {
    const file = tempFile({ optimization: { level: 'maximum' }, models: { idleTimeoutMs: '10m' } });
    const config = load({ file });
    expect(config.models.idleTimeoutMs).toBe(600_000);
    expect(config.models.pressureGraceMs).toBe(5_000);
    expect(config.models.budgetScale).toBe(0.65);
    // Code options sit above the profile too, as do env and flags.
    expect(load({ base: { optimization: { level: 'maximum' }, audio: { chunkSeconds: 25 } } }).audio.chunkSeconds).toBe(25);
    expect(load({ file, env: { MEMTIDE_MODELS__MAX_CONTEXT: '8192' } }).models.maxContext).toBe(8192);
    expect(load({ file, set: ['server.updateIntervalMs=500ms'] }).server.updateIntervalMs).toBe(500);
  });

  it('the level itself may come from any user layer; the latest wins', () => {
    const file = tempFile({ optimization: { level: 'aggressive' } });
    expect(load({ file }).models.idleTimeoutMs).toBe(30_000);
    expect(load({ file, env: { MEMTIDE_OPTIMIZATION__LEVEL: 'maximum' } }).models.idleTimeoutMs).toBe(15_000);
    expect(load({ base: { optimization: { level: 'maximum' } }, file }).models.idleTimeoutMs).toBe(30_000);
  });

  it('a runtime level patch applies its profile at once; null restores the file\'s', () => {
    const file = tempFile({ optimization: { level: 'aggressive' }, sampling: { intervalMs: 500 } });
    const live = createLiveConfig({ env: {}, file, watch: false });
    const seen: number[] = [];
    const subscription = live.config$.subscribe({ next: (c) => seen.push(c.models.idleTimeoutMs), error: (e: unknown) => expect.fail(String(e)) });
    try {
      expect(live.current().models.idleTimeoutMs).toBe(30_000);
      expect(live.patch({ optimization: { level: 'maximum' } }, 'POST /api/actions/optimization-level').models.idleTimeoutMs).toBe(15_000);
      expect(live.current().models.maxContext).toBe(2048);
      expect(live.patch({ optimization: { lowMemory: true } }).models.maxConcurrent).toBe(1);
      // Low-memory's slower sampling does not override the file's own 500 ms.
      expect(live.current().sampling.intervalMs).toBe(500);
      expect(live.patch({ optimization: { lowMemory: null } }).models.maxConcurrent).toBe(4);
      const restored = live.patch({ optimization: { level: null } });
      expect(restored.optimization.level).toBe('aggressive');
      expect(restored.models.idleTimeoutMs).toBe(30_000);
      expect(restored.models.maxContext).toBe(4096);
      expect(live.overrides()).toEqual({ values: {}, paths: [] });
      expect(seen).toEqual([30_000, 15_000, 15_000, 15_000, 30_000]);
    } finally {
      subscription.unsubscribe();
      live.stop();
    }
  });

  it('a file edit that changes the level re-applies the profile, under the runtime patches', () => {
    const file = tempFile({ optimization: { level: 'basic' } });
    const live = createLiveConfig({ env: {}, file, watch: false });
    try {
      live.patch({ models: { pressureGraceMs: '7s' } });
      writeFileSync(file, JSON.stringify({ optimization: { level: 'maximum' } }));
      expect(live.reload()).toBeNull();
      expect(live.current().models.idleTimeoutMs).toBe(15_000);
      expect(live.current().models.pressureGraceMs).toBe(7_000);
    } finally {
      live.stop();
    }
  });

  it('observe-only implies models.observeOnly, at any level, unless the user set it', () => {
    for (const level of ['basic', 'aggressive', 'maximum'] as const) {
      expect(load({ base: { optimization: { level, observeOnly: true } } }).models.observeOnly, level).toBe(true);
      expect(load({ base: { optimization: { level } } }).models.observeOnly, level).toBe(false);
    }
    expect(load({ set: ['optimization.observeOnly=true', 'optimization.lowMemory=true'] }).models.observeOnly).toBe(true);
    expect(load({ base: { optimization: { observeOnly: true }, models: { observeOnly: false } } }).models.observeOnly).toBe(false);
    const live = createLiveConfig({ env: {} });
    try {
      expect(live.patch({ optimization: { observeOnly: true } }).models.observeOnly).toBe(true);
      expect(live.patch({ optimization: { observeOnly: null } }).models.observeOnly).toBe(false);
    } finally {
      live.stop();
    }
  });
});

describe('a profile never breaks a valid user config', () => {
  it('a profile value that would contradict the user\'s own setting yields to it (overlap vs chunk length)', () => {
    const file = tempFile({ optimization: { lowMemory: true }, audio: { overlapSeconds: 20 } });
    const config = load({ file });
    expect(config.audio.chunkSeconds).toBe(30);
    expect(config.transcription.maxQueuedChunks).toBe(1);
    expect(profileShadows([layer({ optimization: { lowMemory: true }, audio: { overlapSeconds: 20 } }, file)])).toContainEqual({
      path: 'audio.chunkSeconds',
      yours: 30,
      profile: 15,
      origin: file,
    });
    // A small overlap does not conflict: the profile's chunk length applies.
    expect(load({ base: { optimization: { lowMemory: true }, audio: { overlapSeconds: 2 } } }).audio.chunkSeconds).toBe(15);
  });

  it('property: when the user layers are valid alone, they stay valid with any profile, and every value the user wrote wins', () => {
    const pick = <T>(values: readonly T[]) => fc.constantFrom(...values);
    const rowValues = (row: ProfileRow) => [...new Set(PROFILE_NAMES.map((name) => row.profiles[name].value))];
    // User settings over every profile path (profile values and others) and over the keys coupled to them.
    const userArb = fc.record(
      {
        optimization: fc.record(
          {
            level: pick(['basic', 'aggressive', 'maximum'] as const),
            lowMemory: fc.boolean(),
            observeOnly: fc.boolean(),
            batchYield: fc.record({ enabled: fc.boolean(), maxHoldMs: fc.integer({ min: 1, max: 3_600_000 }) }, { requiredKeys: [] }),
          },
          { requiredKeys: [] },
        ),
        models: fc.record(
          {
            idleTimeoutMs: fc.oneof(pick(rowValues(PROFILE_ROWS[0]!) as number[]), fc.integer({ min: 0, max: 3_600_000 })),
            maxContext: fc.integer({ min: 256, max: 65_536 }),
            maxConcurrent: fc.integer({ min: 1, max: 16 }),
            budgetScale: fc.double({ min: 0.1, max: 1, noNaN: true }),
            observeOnly: fc.boolean(),
          },
          { requiredKeys: [] },
        ),
        transcription: fc.record(
          {
            maxConcurrent: fc.integer({ min: 1, max: 8 }),
            highConcurrency: fc.option(fc.integer({ min: 1, max: 8 }), { nil: null }),
            maxQueuedChunks: fc.integer({ min: 1, max: 8 }),
          },
          { requiredKeys: [] },
        ),
        audio: fc.record(
          {
            chunkSeconds: fc.oneof(pick([10, 15, 20, 30]), fc.double({ min: 1, max: 120, noNaN: true })),
            // Around the profiles' chunk lengths, where an overlap would stop chunks from advancing.
            overlapSeconds: fc.oneof(pick([0, 2, 14.99, 15, 19.99, 20, 25, 29.99]), fc.double({ min: 0, max: 60, noNaN: true })),
          },
          { requiredKeys: [] },
        ),
        sampling: fc.record({ intervalMs: fc.integer({ min: 50, max: 10_000 }) }, { requiredKeys: [] }),
        server: fc.record({ updateIntervalMs: fc.integer({ min: 0, max: 10_000 }), historyCacheBytes: fc.integer({ min: 0, max: 2 ** 30 }) }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    );
    let checked = 0;
    let yielded = 0;
    fc.assert(
      fc.property(userArb, (values) => {
        const user = [layer(values)];
        let alone: MemtideConfig;
        try {
          alone = validateLayers(user);
        } catch {
          return; // Invalid on its own: the user's error, reported as such (tested elsewhere).
        }
        checked += 1;
        const withProfile = resolveConfig(user);
        for (const row of PROFILE_ROWS) {
          if (valueAt(values, row.path) !== undefined) expect(valueAt(withProfile, row.path), row.path).toEqual(valueAt(alone, row.path));
        }
        // The keys that select the profile are never changed by it; the profile's own optimization rows
        // (optimization.batchYield.enabled) only where the user left them alone.
        const unset = (config: MemtideConfig) => {
          const copy = structuredClone(config.optimization) as unknown as Record<string, Record<string, unknown>>;
          for (const row of PROFILE_ROWS) {
            const [section, group, key] = row.path.split('.');
            if (section === 'optimization' && group && key && valueAt(values, row.path) === undefined) delete copy[group]![key];
          }
          return copy;
        };
        expect(unset(withProfile)).toEqual(unset(alone));
        if (withProfile.audio.chunkSeconds !== profileAlone(selectProfile(alone.optimization).name).audio.chunkSeconds && valueAt(values, 'audio.chunkSeconds') === undefined) yielded += 1;
      }),
      { numRuns: 400 },
    );
    expect(checked).toBeGreaterThan(100);
    // The conflicting case (an overlap at least as long as the profile's chunk) was generated, and the profile yielded.
    expect(yielded).toBeGreaterThan(0);
  });
});

describe('origins and shadows', () => {
  it('a user mistake is still blamed on the user\'s layer, whatever the level', () => {
    const file = tempFile({ optimization: { level: 'maximum' }, models: { idleTimeoutMs: 'soon' } });
    expect(issuesOf(() => load({ file }))).toEqual([expect.objectContaining({ path: 'models.idleTimeoutMs', origin: file })]);
    const overlap = issuesOf(() => load({ file: tempFile({ optimization: { lowMemory: true }, audio: { overlapSeconds: 40 } }) }));
    expect(overlap).toEqual([expect.objectContaining({ path: 'audio.overlapSeconds', origin: expect.stringMatching(/\.json$/) })]);
    const live = createLiveConfig({ env: {} });
    try {
      expect(issuesOf(() => live.patch({ optimization: { level: 'ludicrous' } }, 'POST /api/actions/optimization-level'))).toEqual([
        expect.objectContaining({ path: 'optimization.level', origin: 'POST /api/actions/optimization-level' }),
      ]);
      expect(live.current().optimization.level).toBe('basic');
    } finally {
      live.stop();
    }
  });

  it('a value from the profile is reported as "optimization profile <name>"', () => {
    const file = tempFile({ optimization: { level: 'aggressive' }, models: { idleTimeoutMs: '10m' } });
    const layers = [layer({ optimization: { level: 'aggressive' }, models: { idleTimeoutMs: '10m' } }, file)];
    expect(settingOrigin('models.pressureGraceMs', layers)).toBe('optimization profile aggressive');
    expect(settingOrigin('models.idleTimeoutMs', layers)).toBe(file);
    expect(settingOrigin('log.level', layers)).toBe('defaults');
    expect(settingOrigin('models.maxConcurrent', [layer({ optimization: { lowMemory: true } })])).toBe('optimization profile lowMemory');
    // Were a profile value ever invalid, the issue would name the profile, not the user.
    const broken = [layer({ models: { idleTimeoutMs: -1 } }, profileOrigin('maximum')), layer({ log: { level: 'warn' } })];
    expect(issuesOf(() => validateLayers(broken))).toEqual([expect.objectContaining({ path: 'models.idleTimeoutMs', origin: 'optimization profile maximum' })]);
  });

  it('profileShadows lists the profile values the user\'s settings replaced, with their origin', () => {
    const layers = [
      layer({ sampling: { intervalMs: 200 } }, 'createMemtide() options'),
      layer({ models: { idleTimeoutMs: '10m', maxContext: 2048 } }, '/etc/memtide.json'),
      layer({ optimization: { level: 'maximum' } }, 'POST /api/actions/optimization-level'),
    ];
    // maxContext 2048 equals maximum's own value: nothing was shadowed there. Sampling 200 ms equals nothing either: maximum keeps 1 s.
    expect(profileShadows(layers)).toEqual([
      { path: 'models.idleTimeoutMs', yours: 600_000, profile: 15_000, origin: '/etc/memtide.json' },
      { path: 'sampling.intervalMs', yours: 200, profile: 1_000, origin: 'createMemtide() options' },
    ]);
    // From the effective config alone (no layers), the same paths, without origins.
    expect(profileShadowsIn(resolveConfig(layers))).toEqual([
      { path: 'models.idleTimeoutMs', yours: 600_000, profile: 15_000 },
      { path: 'sampling.intervalMs', yours: 200, profile: 1_000 },
    ]);
    expect(profileShadows([layer({ optimization: { level: 'aggressive' } })])).toEqual([]);
    expect(profileShadows([])).toEqual([]);
  });
});
