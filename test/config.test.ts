import { join } from 'node:path';
import fc from 'fast-check';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { ConfigError, envLayer, loadConfig, resolveConfig, type MemtideConfig } from '../src/app/config.js';
import { DEFAULT_COMPONENT_RULES, configSchema } from '../src/app/configSchema.js';
import { formatBytes, formatDuration, parseBytes, parseDuration } from '../src/app/units.js';
import { configFiles, issuesOf } from './support/configFiles.js';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

const { dir, write: tempFile } = configFiles('memtide-config-test-');

/** A load that reads nothing from the real process environment. */
const load = (options: Parameters<typeof loadConfig>[0] = {}) => loadConfig({ env: {}, ...options });

describe('defaults', () => {
  it('fills every section with the documented defaults', () => {
    const config = load();
    expect(config.sampling).toEqual({ intervalMs: 1000, pss: 'watched' });
    expect(config.pressure).toEqual({ preset: 'auto', thresholds: {}, marginPercent: 5, dwellMs: 30_000 });
    expect(config.history).toEqual({
      enabled: true,
      path: 'memtide.db',
      flushIntervalMs: 5000,
      rawRetentionMs: 86_400_000,
      aggregateBucketMs: 60_000,
      aggregateRetentionMs: 2_592_000_000,
      retentionIntervalMs: 3_600_000,
      maxPendingRecords: 3600,
    });
    expect(config.server).toEqual({
      enabled: true,
      host: '127.0.0.1',
      allowRemote: false,
      tokenFile: 'memtide.token',
      updateIntervalMs: 1000,
      bodyLimitBytes: 1_000_000,
      historyCacheBytes: 16_777_216,
      port: 7071,
    });
    expect(config.optimization).toEqual({ level: 'basic', lowMemory: false, observeOnly: false, settleMs: 30_000, undoAfterMs: 120_000, balanceBudgets: true, batchYield: { enabled: false, idleAfterMs: 20_000, maxHoldMs: 900_000 } });
    expect(config.log).toEqual({ level: 'info', format: 'text' });
    expect(config.components.engine).toBe('engine');
    expect(config.components.rules).toEqual(DEFAULT_COMPONENT_RULES);
    expect(config.components.rules.map((r) => r.component)).toEqual(['frontend', 'ollama', 'audio', 'backend', 'backend', 'backend']);
  });

  it('equals parsing an empty object and an absent input with the schema', () => {
    expect(load()).toEqual(configSchema.parse({}));
    expect(load()).toEqual(configSchema.parse(undefined));
  });

  it('ignores the real process environment when an explicit env is given', () => {
    expect(loadConfig({ env: {} })).toEqual(configSchema.parse({}));
  });
});

describe('precedence: defaults < profile < base < file < env < flags', () => {
  const file = tempFile({ sampling: { intervalMs: '2s' } });
  const env = { MEMTIDE_SAMPLING__INTERVAL_MS: '3000' };

  it('the same key set at every layer: the later layer wins', () => {
    expect(load().sampling.intervalMs).toBe(1000);
    expect(load({ base: { sampling: { intervalMs: 1500 } } }).sampling.intervalMs).toBe(1500);
    expect(load({ base: { sampling: { intervalMs: 1500 } }, file }).sampling.intervalMs).toBe(2000);
    expect(load({ base: { sampling: { intervalMs: 1500 } }, file, env }).sampling.intervalMs).toBe(3000);
    expect(load({ base: { sampling: { intervalMs: 1500 } }, file, env, set: ['sampling.intervalMs=4s'] }).sampling.intervalMs).toBe(4000);
    expect(load({ file, env, flags: { 'sampling.intervalMs': 5000 } }).sampling.intervalMs).toBe(5000);
  });

  it('each layer alone overrides the default', () => {
    expect(load({ file }).sampling.intervalMs).toBe(2000);
    expect(load({ env }).sampling.intervalMs).toBe(3000);
    expect(load({ set: ['sampling.intervalMs=4s'] }).sampling.intervalMs).toBe(4000);
    expect(load({ flags: { 'sampling.intervalMs': '5s' } }).sampling.intervalMs).toBe(5000);
  });

  it('objects merge key by key across layers', () => {
    const config = load({
      base: { log: { format: 'json' } },
      file: tempFile({ sampling: { pss: 'all' }, history: { path: 'from-file.db' } }),
      env: { MEMTIDE_HISTORY__RAW_RETENTION_MS: '2h' },
      set: ['server.port=8080'],
      flags: { 'history.path': 'from-flag.db', 'log.level': undefined },
    });
    expect(config.sampling).toEqual({ intervalMs: 1000, pss: 'all' });
    expect(config.history.path).toBe('from-flag.db');
    expect(config.history.rawRetentionMs).toBe(7_200_000);
    expect(config.server.port).toBe(8080);
    expect(config.log).toEqual({ level: 'info', format: 'json' });
  });

  it('the optimization profile sits between the defaults and every user layer', () => {
    const maximum = { optimization: { level: 'maximum' } } as const;
    expect(load({ base: maximum }).models.idleTimeoutMs).toBe(15_000);
    expect(load({ base: { ...maximum, models: { idleTimeoutMs: '2m' } } }).models.idleTimeoutMs).toBe(120_000);
    expect(load({ base: maximum, file: tempFile({ models: { idleTimeoutMs: '3m' } }) }).models.idleTimeoutMs).toBe(180_000);
    expect(load({ base: maximum, env: { MEMTIDE_MODELS__IDLE_TIMEOUT_MS: '4m' } }).models.idleTimeoutMs).toBe(240_000);
    expect(load({ base: maximum, set: ['models.idleTimeoutMs=5m'] }).models.idleTimeoutMs).toBe(300_000);
  });

  it('MEMTIDE_CONFIG names the file when no file option is given; an explicit file wins', () => {
    const other = tempFile({ sampling: { intervalMs: 7000 } });
    expect(load({ env: { MEMTIDE_CONFIG: file } }).sampling.intervalMs).toBe(2000);
    expect(load({ env: { MEMTIDE_CONFIG: file }, file: other }).sampling.intervalMs).toBe(7000);
  });
});

describe('environment variables', () => {
  it('maps MEMTIDE_SECTION__KEY to section.key; case and "_" within a level do not matter', () => {
    expect(load({ env: { MEMTIDE_SAMPLING__INTERVAL_MS: '500' } }).sampling.intervalMs).toBe(500);
    expect(load({ env: { MEMTIDE_Sampling__IntervalMs: '600' } }).sampling.intervalMs).toBe(600);
    expect(load({ env: { MEMTIDE_SAMPLING__INTERVALMS: '700' } }).sampling.intervalMs).toBe(700);
    expect(load({ env: { MEMTIDE_PRESSURE__THRESHOLDS__MEDIUM__AVAILABLE_PERCENT: '20' } }).pressure.thresholds).toEqual({
      medium: { availablePercent: 20 },
    });
  });

  it('parses values as JSON when they are JSON, else keeps the string', () => {
    const config = load({
      env: {
        MEMTIDE_HISTORY__ENABLED: 'false',
        MEMTIDE_HISTORY__FLUSH_INTERVAL_MS: '10s',
        MEMTIDE_SERVER__HOST: '0.0.0.0',
        MEMTIDE_PRESSURE__THRESHOLDS__HIGH__SWAP_USED_PERCENT: 'null',
      },
    });
    expect(config.history.enabled).toBe(false);
    expect(config.history.flushIntervalMs).toBe(10_000);
    expect(config.server.host).toBe('0.0.0.0');
    expect(config.pressure.thresholds.high).toEqual({ swapUsedPercent: null });
  });

  it('ignores reserved and non-MEMTIDE variables', () => {
    expect(load({ env: { MEMTIDE_TOKEN: 'secret', MEMTIDE_CONFIG: undefined, PATH: '/bin', memtide_x: '1' } })).toEqual(configSchema.parse({}));
  });

  it('a rules array from env replaces the defaults (and a file\'s rules) whole', () => {
    const rules = [{ component: 'gpu', name: 'nvidia-smi' }, { component: 'web', port: 8080 }];
    const fromEnv = load({
      file: tempFile({ components: { rules: [{ component: 'x', name: 'x' }] } }),
      env: { MEMTIDE_COMPONENTS__RULES: JSON.stringify(rules) },
    });
    expect(fromEnv.components.rules).toEqual(rules);
    expect(fromEnv.components.engine).toBe('engine');
  });

  it('an unknown MEMTIDE_ variable is an error naming the variable', () => {
    expect(issuesOf(() => load({ env: { MEMTIDE_SAMPLNG__INTERVAL_MS: '500' } }))).toEqual([
      { path: 'samplng', message: 'unknown configuration key', origin: 'MEMTIDE_SAMPLNG__INTERVAL_MS' },
    ]);
    expect(issuesOf(() => load({ env: { MEMTIDE_SAMPLING__INTERVALL: '500' } }))).toEqual([
      { path: 'sampling.intervall', message: 'unknown key', origin: 'MEMTIDE_SAMPLING__INTERVALL' },
    ]);
    expect(issuesOf(() => load({ env: { MEMTIDE_NOPE: '1' } }))).toEqual([{ path: 'nope', message: 'unknown key', origin: 'MEMTIDE_NOPE' }]);
    // envLayer itself only rejects an unknown level that is not the last one; the schema catches the rest.
    expect(issuesOf(() => envLayer({ MEMTIDE_LOG__X__Y: '1' }))).toEqual([{ path: 'log.x', message: 'unknown configuration key', origin: 'MEMTIDE_LOG__X__Y' }]);
  });

  it('a bad value from env names the variable as origin', () => {
    const issues = issuesOf(() => load({ env: { MEMTIDE_SAMPLING__INTERVAL_MS: 'fast', MEMTIDE_SERVER__PORT: '70000' } }));
    expect(issues).toHaveLength(2);
    expect(issues).toContainEqual({
      path: 'sampling.intervalMs',
      message: 'not a duration: "fast" (use e.g. 500ms, 5s, 10m, 24h, 30d)',
      origin: 'MEMTIDE_SAMPLING__INTERVAL_MS',
    });
    expect(issues).toContainEqual(expect.objectContaining({ path: 'server.port', origin: 'MEMTIDE_SERVER__PORT' }));
    expect(issuesOf(() => load({ env: { MEMTIDE_SAMPLING__INTERVAL_MS: '10' } }))).toEqual([
      { path: 'sampling.intervalMs', message: 'at least 50 ms: faster sampling costs more than it tells', origin: 'MEMTIDE_SAMPLING__INTERVAL_MS' },
    ]);
  });
});

describe('errors', () => {
  it('an unknown key in the file: full dotted path, origin the file', () => {
    const file = tempFile({ sampling: { intervall: 500 } });
    expect(issuesOf(() => load({ file }))).toEqual([{ path: 'sampling.intervall', message: 'unknown key', origin: file }]);
    const deep = tempFile({ pressure: { thresholds: { high: { availablePercnt: 5 } } }, sampl: {} });
    expect(issuesOf(() => load({ file: deep }))).toEqual([
      { path: 'pressure.thresholds.high.availablePercnt', message: 'unknown key', origin: deep },
      { path: 'sampl', message: 'unknown key', origin: deep },
    ]);
  });

  it('a bad duration string names the path', () => {
    const file = tempFile({ history: { rawRetentionMs: 'forever' } });
    expect(issuesOf(() => load({ file }))).toEqual([
      { path: 'history.rawRetentionMs', message: 'not a duration: "forever" (use e.g. 500ms, 5s, 10m, 24h, 30d)', origin: file },
    ]);
  });

  it('a bad --set value names the flag', () => {
    expect(issuesOf(() => load({ set: ['pressure.dwellMs=soon'] }))).toEqual([
      { path: 'pressure.dwellMs', message: 'not a duration: "soon" (use e.g. 500ms, 5s, 10m, 24h, 30d)', origin: '--set pressure.dwellMs' },
    ]);
    expect(issuesOf(() => load({ set: ['no-equals-sign'] }))).toEqual([
      { path: 'no-equals-sign', message: 'expected KEY=VALUE, e.g. sampling.intervalMs=500ms', origin: '--set' },
    ]);
  });

  it('a bad rule names the rule index', () => {
    const file = tempFile({ components: { rules: [{ component: 'ok', name: 'x' }, { component: 'Bad Name', name: '(' }] } });
    const issues = issuesOf(() => load({ file }));
    expect(issues.map((i) => i.path).sort()).toEqual(['components.rules.1.component', 'components.rules.1.name']);
    expect(issues.every((i) => i.origin === file)).toBe(true);
    expect(issuesOf(() => load({ base: { components: { rules: [{ component: 'x' }] } } }))).toEqual([
      { path: 'components.rules.0', message: 'a rule needs at least one of name, cmdline, pidFile, port', origin: 'createMemtide() options' },
    ]);
  });

  it('invalid JSON, an unreadable file and a non-object file name the file', () => {
    const bad = tempFile('{ "sampling": { "intervalMs": 500, } }');
    const [issue, ...rest] = issuesOf(() => load({ file: bad }));
    expect(rest).toEqual([]);
    expect(issue).toMatchObject({ path: '', origin: bad });
    expect(issue?.message).toMatch(/^not valid JSON: /);

    const missing = join(dir, 'does-not-exist.json');
    expect(issuesOf(() => load({ file: missing }))).toEqual([{ path: '', message: 'cannot read config file: ENOENT', origin: missing }]);

    const array = tempFile('[1, 2]');
    expect(issuesOf(() => load({ file: array }))).toEqual([{ path: '', message: 'the file must hold a JSON object', origin: array }]);
  });

  it('ConfigError is an Error whose message lists every issue with its origin', () => {
    const file = tempFile({ sampling: { intervall: 5 } });
    try {
      load({ file });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(Error);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).name).toBe('ConfigError');
      expect((error as ConfigError).message).toBe(`invalid configuration:\n  sampling.intervall: unknown key (from ${file})`);
    }
  });

  // BUG (src/app/config.ts originOf): the prefix search runs layer by layer, so a later
  // layer that set a *sibling* (here env sets sampling.pss) is blamed for an unknown key
  // that only the file contains. Expected origin: the file; actual: "environment".
  // Flip to `it` when fixed.
  it('an unknown key in the file is blamed on the file even when env sets a sibling key', () => {
    const file = tempFile({ sampling: { intervall: 500 } });
    expect(issuesOf(() => load({ file, env: { MEMTIDE_SAMPLING__PSS: 'all' } }))).toEqual([
      { path: 'sampling.intervall', message: 'unknown key', origin: file },
    ]);
  });

  // BUG (src/app/config.ts deepMerge): `out[key] = …` with key "__proto__" (an own key after
  // JSON.parse) sets the prototype instead of a key, so a top-level "__proto__" in the file is
  // not reported as unknown and its contents silently take effect through the prototype chain.
  // Expected: issue { path: '__proto__', message: 'unknown key' }; actual: loads with log.level 'debug'.
  it('a "__proto__" key in the file is an unknown key, not a prototype', () => {
    const file = tempFile('{ "__proto__": { "log": { "level": "debug" } } }');
    expect(issuesOf(() => load({ file }))).toEqual([{ path: '__proto__', message: 'unknown key', origin: file }]);
  });

  // BUG (src/app/units.ts parseDuration/parseBytes): no upper bound, so "99999999999999999999d"
  // is accepted as 8.64e27 (not a safe integer) and "1" followed by 400 zeros as Infinity
  // (printed as null). Numbers must be safe integers, so print → parse is not identity.
  // Expected: a ConfigError at pressure.dwellMs; actual: accepted (dwellMs 8.64e27).
  it('a duration string beyond Number.MAX_SAFE_INTEGER ms is rejected like the same number', () => {
    expect(issuesOf(() => resolveConfig([{ origin: 'x', values: { pressure: { dwellMs: '99999999999999999999d' } } }]))).toEqual([
      expect.objectContaining({ path: 'pressure.dwellMs', origin: 'x' }),
    ]);
    expect(issuesOf(() => resolveConfig([{ origin: 'x', values: { pressure: { dwellMs: `1${'0'.repeat(400)}` } } }]))).toEqual([
      expect.objectContaining({ path: 'pressure.dwellMs', origin: 'x' }),
    ]);
  });
});

describe('the result', () => {
  it('is deeply frozen', () => {
    const config = load({ file: tempFile({ pressure: { thresholds: { medium: { availablePercent: 20 } } } }) });
    const nodes: unknown[] = [
      config,
      config.sampling,
      config.components,
      config.components.rules,
      ...config.components.rules,
      config.pressure,
      config.pressure.thresholds,
      config.pressure.thresholds.medium,
      config.history,
      config.server,
      config.log,
    ];
    for (const node of nodes) expect(Object.isFrozen(node)).toBe(true);
    expect(() => {
      (config.sampling as { intervalMs: number }).intervalMs = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.components.rules as unknown as unknown[]).push({});
    }).toThrow(TypeError);
  });

  it('freezes neither the inputs nor the schema defaults', () => {
    const base = { sampling: { pss: 'all' as const }, components: { rules: [{ component: 'x', name: 'x' }] } };
    load({ base });
    load();
    expect(Object.isFrozen(base.sampling)).toBe(false);
    expect(Object.isFrozen(base.components.rules[0])).toBe(false);
    expect(Object.isFrozen(DEFAULT_COMPONENT_RULES)).toBe(false);
    expect(Object.isFrozen(DEFAULT_COMPONENT_RULES[0])).toBe(false);
    expect(load().pressure.thresholds).not.toBe(load().pressure.thresholds);
  });
});

describe('units', () => {
  it('parses durations', () => {
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('30d')).toBe(2_592_000_000);
    expect(parseDuration('30')).toBe(30);
    expect(parseDuration(' 5 S ')).toBe(5000);
    expect(parseDuration('0.0004s')).toBe(0);
  });

  it('rejects what is not a duration', () => {
    for (const text of ['', 's', '-5s', '10 parsecs', '5 sec', '1h30m', '1e3', '.5s', '5.s', 'NaN', 'Infinity']) {
      expect(parseDuration(text), text).toBeNull();
    }
  });

  it('parses sizes, decimal and binary kept apart', () => {
    expect(parseBytes('6GB')).toBe(6_000_000_000);
    expect(parseBytes('1GiB')).toBe(GIB);
    expect(parseBytes('1.5GiB')).toBe(1.5 * GIB);
    expect(parseBytes('512MB')).toBe(512_000_000);
    expect(parseBytes('512MiB')).toBe(512 * MIB);
    expect(parseBytes('512 mib')).toBe(512 * MIB);
    expect(parseBytes('4096')).toBe(4096);
    expect(parseBytes('2k')).toBe(2048);
    expect(parseBytes('6G')).toBe(6 * GIB);
  });

  it('rejects what is not a size', () => {
    for (const text of ['', 'GB', '-1GB', '10 parsecs', '6 gigabytes', '1e9', '5PB']) {
      expect(parseBytes(text), text).toBeNull();
    }
  });

  it('formats durations and sizes for humans', () => {
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(45_000)).toBe('45s');
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(90_061_000)).toBe('1d1h');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1.5 * GIB)).toBe('1.5 GiB');
    expect(formatBytes(150 * MIB)).toBe('150 MiB');
    expect(formatBytes(-2048)).toBe('-2.0 KiB');
  });

  it('property: "<n><unit>" parses to n times the unit', () => {
    const factors = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
    fc.assert(
      fc.property(fc.nat({ max: 1_000_000 }), fc.constantFrom(...(Object.keys(factors) as (keyof typeof factors)[])), (n, unit) => {
        expect(parseDuration(`${n}${unit}`)).toBe(n * factors[unit]);
        expect(parseDuration(`${n} ${unit.toUpperCase()}`)).toBe(n * factors[unit]);
      }),
    );
  });
});

// ---------------------------------------------------------------------------------------
// Properties over generated configurations
// ---------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const DURATION_UNITS = ['ms', 's', 'm', 'h', 'd', 'MS', 'S', 'H', ''] as const;

/** Valid duration inputs of at least `minMs`: integers, or strings such as "5s", "1.25 h", "120". */
const durationArb = (minMs = 0): fc.Arbitrary<number | string> =>
  fc.oneof(
    fc.integer({ min: minMs, max: 2 ** 40 }),
    fc
      .tuple(fc.integer({ min: 0, max: 5000 }), fc.option(fc.integer({ min: 0, max: 99 }), { nil: undefined }), fc.constantFrom('', ' '), fc.constantFrom(...DURATION_UNITS))
      .map(([whole, fraction, space, unit]) => `${whole}${fraction === undefined ? '' : `.${fraction}`}${space}${unit}`)
      .filter((text) => (parseDuration(text) ?? -1) >= minMs),
  );
const msOf = (value: Json | undefined, fallback: number): number =>
  value === undefined ? fallback : typeof value === 'number' ? value : (parseDuration(String(value)) ?? Number.NaN);

const percentArb = fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 100 }), fc.double({ min: 0, max: 100, noNaN: true }));
const levelArb = fc.record(
  { availablePercent: percentArb, psiSomeAvg10: percentArb, psiFullAvg10: percentArb, swapUsedPercent: percentArb },
  { requiredKeys: [] },
);
const componentNameArb = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,39}$/);
const ruleArb = fc.record(
  {
    component: componentNameArb,
    name: fc.constantFrom('ollama', 'whisper(-server)?', 'ba[rz]', 'x.*'),
    cmdline: fc.option(fc.constantFrom('\\bmain:app\\b', 'serve'), { nil: undefined }),
    childOf: fc.option(fc.constantFrom('meetily.*', 'systemd'), { nil: undefined }),
    pidFile: fc.option(fc.constantFrom('/run/x.pid', 'app.pid'), { nil: undefined }),
    port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
  },
  { requiredKeys: ['component', 'name'] },
);
const historyArb = fc
  .record(
    {
      enabled: fc.boolean(),
      path: fc.string({ minLength: 1, maxLength: 20 }),
      flushIntervalMs: durationArb(),
      rawRetentionMs: durationArb(),
      aggregateBucketMs: durationArb(),
      aggregateRetentionMs: durationArb(),
      retentionIntervalMs: durationArb(),
    },
    { requiredKeys: [] },
  )
  .map((history) => {
    // Aggregates must outlive raw samples (defaults 24h and 30d): keep generated pairs consistent.
    const raw = msOf(history.rawRetentionMs, 86_400_000);
    const aggregate = msOf(history.aggregateRetentionMs, 2_592_000_000);
    return aggregate >= raw ? history : { ...history, aggregateRetentionMs: history.rawRetentionMs ?? 86_400_000 };
  });

/** An arbitrary valid configuration input over a representative subset of keys. */
const configInputArb = fc.record(
  {
    sampling: fc.record({ intervalMs: durationArb(50), pss: fc.constantFrom('watched', 'all', 'off') }, { requiredKeys: [] }),
    components: fc.record({ rules: fc.array(ruleArb, { maxLength: 3 }), engine: componentNameArb }, { requiredKeys: [] }),
    pressure: fc.record(
      {
        preset: fc.constantFrom('auto', '4gb', '8gb', '16gb'),
        marginPercent: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.double({ min: 0, max: 50, noNaN: true })),
        dwellMs: durationArb(),
        thresholds: fc.record({ medium: levelArb, high: levelArb, critical: levelArb }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    ),
    history: historyArb,
    server: fc.record({ enabled: fc.boolean(), host: fc.constantFrom('127.0.0.1', '::1', 'localhost'), port: fc.integer({ min: 0, max: 65535 }) }, { requiredKeys: [] }),
    log: fc.record({ level: fc.constantFrom('debug', 'info', 'warn', 'error', 'silent'), format: fc.constantFrom('text', 'json') }, { requiredKeys: [] }),
    // The level picks a profile layer under these values: print -> parse must hold through it too.
    optimization: fc.record(
      { level: fc.constantFrom('basic', 'aggressive', 'maximum'), lowMemory: fc.boolean(), observeOnly: fc.boolean() },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: [] },
) as fc.Arbitrary<JsonObject>;

/** Sets a value at `path` in a JSON tree, creating objects on the way (arrays come from prepareFor). */
function setIn(root: JsonObject, path: readonly string[], value: Json): void {
  let node: JsonObject | Json[] = root;
  path.forEach((key, index) => {
    const slot = node as Record<string, Json>;
    if (index === path.length - 1) {
      slot[key] = value;
      return;
    }
    const next = slot[key];
    if (typeof next !== 'object' || next === null) slot[key] = {};
    node = slot[key] as JsonObject | Json[];
  });
}

const clone = (value: JsonObject): JsonObject => JSON.parse(JSON.stringify(value)) as JsonObject;
const resolveOne = (values: JsonObject): MemtideConfig => resolveConfig([{ origin: 'gen', values }]);
const segments = (dotted: string): string[] => (dotted === '' ? [] : dotted.split('.'));
/** When a path goes into a rule, the input gets exactly one known-good rule to break. */
function prepareFor(input: JsonObject, path: readonly string[]): JsonObject {
  const out = clone(input);
  if (path[0] === 'components' && path[1] === 'rules' && path.length > 2) setIn(out, ['components', 'rules'], [{ component: 'custom', name: 'custom' }]);
  return out;
}

// ---- The schema's shape, read from its JSON Schema so new sections are covered without edits here.

interface JsonSchemaNode {
  type?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchemaNode[];
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}

/** Whether a JSON Schema node (type level only: objects and arrays are not descended) accepts a value. */
function accepts(node: JsonSchemaNode, value: unknown): boolean {
  if (node.anyOf) return node.anyOf.some((branch) => accepts(branch, value));
  if (node.enum && !node.enum.includes(value)) return false;
  if ('const' in node && node.const !== value) return false;
  const inRange = (n: number) =>
    (node.minimum === undefined || n >= node.minimum) &&
    (node.maximum === undefined || n <= node.maximum) &&
    (node.exclusiveMinimum === undefined || n > node.exclusiveMinimum) &&
    (node.exclusiveMaximum === undefined || n < node.exclusiveMaximum);
  switch (node.type) {
    case undefined:
      return true;
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'null':
      return value === null;
    case 'integer':
      return Number.isSafeInteger(value) && inRange(value as number);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) && inRange(value);
    case 'string':
      return (
        typeof value === 'string' &&
        value.length >= (node.minLength ?? 0) &&
        value.length <= (node.maxLength ?? Infinity) &&
        (node.pattern === undefined || new RegExp(node.pattern).test(value))
      );
    default:
      throw new Error(`unexpected JSON Schema type ${node.type}`);
  }
}

const CANDIDATES: Json[] = [{}, [], true, false, null, '', 'x', 'Not Valid §', -1, -0.5, 0, 1.5, 5, 80, 1e15, '5'];

interface SchemaShape {
  /** Every node below the root (objects, arrays and leaves), dotted; items of components.rules as `.0`. */
  nodes: Map<string, JsonSchemaNode>;
  /** Every object, with the keys it knows. */
  objects: Map<string, string[]>;
}

function schemaShape(): SchemaShape {
  const nodes = new Map<string, JsonSchemaNode>();
  const objects = new Map<string, string[]>();
  const walk = (node: JsonSchemaNode, path: string): void => {
    if (path) nodes.set(path, node);
    if (node.properties) {
      objects.set(path, Object.keys(node.properties));
      for (const [key, child] of Object.entries(node.properties)) walk(child, path ? `${path}.${key}` : key);
    }
    // Only the rules array has elements the tests know how to build (prepareFor).
    if (node.items && path === 'components.rules') walk(node.items, `${path}.0`);
  };
  walk(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode, '');
  return { nodes, objects };
}
const SHAPE = schemaShape();

const notA = (test: (text: string) => boolean) => fc.string({ maxLength: 12 }).filter((text) => !test(text));
/** Wrong values the JSON Schema cannot express (units, refinements), per path. */
function extraBadValues(path: string): fc.Arbitrary<Json>[] {
  const extras: fc.Arbitrary<Json>[] = [];
  if (path.endsWith('Ms')) extras.push(notA((text) => parseDuration(text) !== null), fc.integer({ max: -1 }), fc.constantFrom('-5s', '10 parsecs', '1h30m'));
  if (path.endsWith('Bytes')) extras.push(notA((text) => parseBytes(text) !== null), fc.constantFrom('-1GB', '10 parsecs'));
  if (path === 'sampling.intervalMs') extras.push(fc.integer({ min: 0, max: 49 }), fc.constantFrom('10ms', '0.01s', '49'));
  if (/^components\.rules\.0\.(name|cmdline|childOf)$/.test(path)) extras.push(fc.constantFrom('(', '[a-', '*', '+x', ')'));
  if (/^components\.(engine|rules\.0\.component)$/.test(path)) extras.push(notA((text) => /^[a-z][a-z0-9_.-]{0,39}$/.test(text)));
  return extras;
}

/** Every node of the schema with the wrong values for it. */
const LEAVES: ReadonlyArray<readonly [string, fc.Arbitrary<Json>]> = [...SHAPE.nodes].map(([path, node]) => {
  const wrong = CANDIDATES.filter((value) => !accepts(node, value));
  return [path, fc.oneof(...(wrong.length ? [fc.constantFrom(...wrong)] : []), ...extraBadValues(path))] as const;
});

describe('properties', () => {
  it('the shape read from the schema covers what the generators and the docs assume', () => {
    expect(SHAPE.objects.get('')).toEqual(expect.arrayContaining(['sampling', 'components', 'pressure', 'history', 'server', 'log']));
    expect(SHAPE.objects.get('components.rules.0')).toEqual(['component', 'name', 'cmdline', 'childOf', 'pidFile', 'port']);
    expect(SHAPE.objects.get('pressure.thresholds.critical')).toEqual(['availablePercent', 'psiSomeAvg10', 'psiFullAvg10', 'swapUsedPercent']);
    // Every node must reject some type-level candidate, i.e. be representable in the JSON Schema.
    const unconstrained = [...SHAPE.nodes].filter(([path, node]) => CANDIDATES.every((value) => accepts(node, value)) && !extraBadValues(path).length);
    expect(unconstrained.map(([path]) => path)).toEqual([]);
  });

  it('generated inputs are valid and load (sanity of the arbitrary)', () => {
    fc.assert(fc.property(configInputArb, (input) => void resolveOne(input)), { numRuns: 200 });
  });

  it('print → parse is identity: a loaded config, as JSON, loads to itself', () => {
    fc.assert(
      fc.property(configInputArb, (input) => {
        const loaded = resolveOne(input);
        const printed = JSON.parse(JSON.stringify(loaded)) as JsonObject;
        const reloaded = resolveConfig([{ origin: 'x', values: printed }]);
        expect(reloaded).toEqual(loaded);
        // Units are normalised to numbers: what was written as "5s" is printed as 5000.
        const interval = (input.sampling as JsonObject | undefined)?.intervalMs;
        if (interval !== undefined) expect(loaded.sampling.intervalMs).toBe(msOf(interval, Number.NaN));
      }),
      { numRuns: 300 },
    );
  });

  it('a wrong value at any node is rejected with an issue at exactly that path', () => {
    fc.assert(
      fc.property(configInputArb, fc.constantFrom(...LEAVES).chain(([path, bad]) => bad.map((value) => [path, value] as const)), (input, [path, value]) => {
        const broken = prepareFor(input, segments(path));
        setIn(broken, segments(path), value);
        const issues = issuesOf(() => resolveOne(broken));
        expect(issues.map((i) => i.path)).toContain(path);
        for (const issue of issues) expect(issue.origin).toBe('gen');
      }),
      { numRuns: 500 },
    );
  });

  it('an unknown key at any object is rejected with the path of that key', () => {
    fc.assert(
      fc.property(
        configInputArb,
        fc.constantFrom(...SHAPE.objects).chain(([path, keys]) =>
          fc.tuple(
            fc.constant(path),
            // "__proto__" is excluded here: see the it.fails test above.
            fc.string({ minLength: 1, maxLength: 12 }).filter((key) => !keys.includes(key) && key !== '__proto__'),
          ),
        ),
        fc.jsonValue(),
        (input, [path, key], value) => {
          const broken = prepareFor(input, segments(path));
          setIn(broken, [...segments(path), key], value as Json);
          // A key with dots, spaces, quotes or nothing in it is shown as a JSON string, so the path names exactly it.
          const shown = /^[^\s."\\\u0000-\u001f]+$/.test(key) ? key : JSON.stringify(key);
          const dotted = path ? `${path}.${shown}` : shown;
          expect(issuesOf(() => resolveOne(broken))).toEqual([{ path: dotted, message: 'unknown key', origin: 'gen' }]);
        },
      ),
      { numRuns: 400 },
    );
  });
});
