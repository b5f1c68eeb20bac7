/**
 * Fuzzing the configuration's three input layers: the file (arbitrary JSON,
 * arbitrary text, and valid configs with one mutation: a wrong type, an
 * unknown key, `__proto__`, a huge or negative number, a bad unit string),
 * the environment (`MEMTIDE_A__B`) and `--set a.b=value`.
 *
 * Every load either succeeds, with a config whose numbers are all finite
 * (durations and sizes safe integers), or throws a ConfigError whose every
 * issue names a path (only a whole-file problem names the root) and the layer
 * the value came from. Never another exception type, never a polluted
 * Object.prototype. Failures print fast-check's seed and path.
 */
import fc from 'fast-check';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type ConfigIssue, type MemtideConfig } from '../../src/app/config.js';
import { configSchema } from '../../src/app/configSchema.js';
import { runs } from './support/runs.js';
import { configFiles } from '../support/configFiles.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const { write: tempFile } = configFiles('memtide-fuzz-config-');

// ---------------------------------------------------------------------------------------
// The schema's shape (from its JSON Schema: new sections are fuzzed without edits here)
// ---------------------------------------------------------------------------------------

interface Node {
  type?: string;
  properties?: Record<string, Node>;
  items?: Node;
  anyOf?: Node[];
}

/** Every object path (with its keys) and every leaf path of the schema, dotted. */
function shapeOf(): { objects: Map<string, string[]>; leaves: string[] } {
  const objects = new Map<string, string[]>();
  const leaves: string[] = [];
  const walk = (node: Node, path: string): void => {
    if (node.properties) {
      objects.set(path, Object.keys(node.properties));
      for (const [key, child] of Object.entries(node.properties)) walk(child, path ? `${path}.${key}` : key);
    } else if (path) {
      leaves.push(path);
    }
  };
  walk(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Node, '');
  return { objects, leaves };
}
const SHAPE = shapeOf();
const OBJECT_PATHS = [...SHAPE.objects.keys()];
const split = (dotted: string): string[] => (dotted === '' ? [] : dotted.split('.'));

// ---------------------------------------------------------------------------------------
// What must hold
// ---------------------------------------------------------------------------------------

/** Messages of issues about a whole input (a file that is no JSON object, a flag without "="): they may name the root. */
const WHOLE_INPUT = /^(not valid JSON|the file must hold a JSON object|cannot read config file|expected KEY=VALUE)/;

function expectPrototypeClean(): void {
  expect(Object.getOwnPropertyNames(Object.prototype).filter((key) => !PROTOTYPE_KEYS.has(key))).toEqual([]);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
}
const PROTOTYPE_KEYS = new Set(Object.getOwnPropertyNames(Object.prototype));

/** Every number of a loaded config is finite; durations (…Ms) and sizes (…Bytes) are safe integers. */
function expectSaneNumbers(value: unknown, path = ''): void {
  if (typeof value === 'number') {
    expect(Number.isFinite(value), `${path} = ${value}`).toBe(true);
    if (/(Ms|Bytes)$/.test(path)) expect(Number.isSafeInteger(value), `${path} = ${value}`).toBe(true);
    return;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [key, inner] of Object.entries(value)) expectSaneNumbers(inner, path ? `${path}.${key}` : key);
  }
}

/**
 * Loads, and checks the outcome: a sane config, or a ConfigError with well-formed issues whose
 * origins are among `origins` (a function: the origin may depend on the path). Returns the issues.
 */
function outcome(load: () => MemtideConfig, originOk: (origin: string) => boolean): ConfigIssue[] | null {
  let config: MemtideConfig;
  try {
    config = load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String((error as Error)?.stack ?? error)}`);
    expect(error.code).toBe('MEMTIDE_ERR_CONFIG');
    expect(error.issues.length).toBeGreaterThan(0);
    for (const issue of error.issues) {
      expect(Object.keys(issue).sort()).toEqual(['message', 'origin', 'path']);
      expect(typeof issue.path).toBe('string');
      expect(typeof issue.message === 'string' && issue.message.length > 0, JSON.stringify(issue)).toBe(true);
      expect(typeof issue.origin === 'string' && originOk(issue.origin), `origin of ${JSON.stringify(issue)}`).toBe(true);
      if (!WHOLE_INPUT.test(issue.message)) expect(issue.path, `an issue that names no path: ${JSON.stringify(issue)}`).not.toBe('');
      // The message a person reads names the path and the origin.
      expect(error.message).toContain(`${issue.path || '(root)'}: ${issue.message} (from ${issue.origin})`);
    }
    expectPrototypeClean();
    return error.issues;
  }
  expectSaneNumbers(config);
  expectPrototypeClean();
  return null;
}

/**
 * An issue is about `path` when it names it, a key above it (an object replaced whole), below it, or
 * a sibling (cross-field rules such as "maxRecoveryDelayMs must be at least recoveryDelayMs" name the other key).
 */
const parentOf = (dotted: string) => dotted.slice(0, Math.max(0, dotted.lastIndexOf('.')));
const related = (issuePath: string, path: string) =>
  issuePath === path ||
  path.startsWith(`${issuePath}.`) ||
  issuePath.startsWith(`${path}.`) ||
  (issuePath !== '' && path === '') ||
  (parentOf(issuePath) === parentOf(path) && parentOf(path) !== '');

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/** Keys people mistype, and keys that are dangerous in JavaScript. */
const oddKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '', ' ', 'a.b', '.', '0', 'intervalMS', 'sampling', '\u0000', 'ñ'),
  fc.string({ maxLength: 10 }),
);

/** Wrong values for any setting: wrong types, huge and negative numbers, bad unit strings. */
const badValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(true, false, null, [], {}, [1, 2], { x: 1 }, '', ' ', 'x', '5', 'true', 'null'),
  fc.constantFrom<Json>(1e308, -1e308, 2 ** 53, 2 ** 53 + 2, 2 ** 64, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 5e-324, -0, 0.5, -1, -0.5, 65536, 4294967296),
  fc.constantFrom<Json>('-5s', '-1', '-0', '5 parsecs', '1e3ms', '5.s', '.5s', 'Infinity', 'NaN', '1h30m', '5PB', '-1GB', '1e400', `${'9'.repeat(400)}d`, `1${'0'.repeat(30)}`, '99999999999999999999d', '0x10', '５s', '5\u0000s'),
  fc.double().filter((n) => Number.isFinite(n)) as fc.Arbitrary<Json>,
  fc.string({ maxLength: 12 }),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
);

/** Valid starting points: empty, or a few valid settings. */
const validBase: fc.Arbitrary<JsonObject> = fc.constantFrom<JsonObject>(
  {},
  { sampling: { intervalMs: '2s', pss: 'all' } },
  { pressure: { preset: '8gb', thresholds: { high: { availablePercent: 10 } } }, log: { level: 'warn' } },
  { history: { rawRetentionMs: '12h', aggregateRetentionMs: '7d' }, server: { port: 8080, bodyLimitBytes: '64KiB' } },
  { components: { rules: [{ component: 'gpu', name: 'nvidia-smi' }] } },
);

type Mutation = { kind: 'set'; path: string[]; value: Json } | { kind: 'unknownKey'; path: string[]; key: string; value: Json };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), path: fc.constantFrom(...SHAPE.leaves).map(split), value: badValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('set' as const), path: fc.constantFrom(...OBJECT_PATHS.filter(Boolean)).map(split), value: badValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('unknownKey' as const), path: fc.constantFrom(...OBJECT_PATHS).map(split), key: oddKey, value: badValue }) },
);

/** `root[a][b]... = value` with own properties all the way (a "__proto__" key stays a key, as JSON.parse makes it). */
function setIn(root: JsonObject, path: readonly string[], value: Json): JsonObject {
  const out = structuredClone(root);
  let node: JsonObject = out;
  path.forEach((key, index) => {
    if (index === path.length - 1) {
      Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
      return;
    }
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    const child: JsonObject = typeof next === 'object' && next !== null && !Array.isArray(next) ? next : {};
    Object.defineProperty(node, key, { value: child, enumerable: true, writable: true, configurable: true });
    node = child;
  });
  return out;
}

/** How an issue writes a path: dotted, a key that is empty or holds dots, spaces or quotes as a JSON string. */
const display = (path: readonly string[]) => path.map((key) => (/^[^\s."\\\u0000-\u001f]+$/.test(key) ? key : JSON.stringify(key))).join('.');

const mutate = (base: JsonObject, m: Mutation): { input: JsonObject; path: string } =>
  m.kind === 'set' ? { input: setIn(base, m.path, m.value), path: display(m.path) } : { input: setIn(base, [...m.path, m.key], m.value), path: display([...m.path, m.key]) };

/** `sampling.intervalMs` → `MEMTIDE_SAMPLING__INTERVAL_MS`, in one of the spellings envLayer accepts. */
const envName = (path: readonly string[], style: 'snake' | 'flat' | 'camel') =>
  `MEMTIDE_${path
    .map((key) => (style === 'snake' ? key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase() : style === 'flat' ? key.toUpperCase() : key))
    .join('__')}`;

const jsonText = (value: Json) => JSON.stringify(value);

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

describe('fuzz: the config file', () => {
  it('arbitrary JSON values as the file: a config or a ConfigError naming the file', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const file = tempFile(JSON.stringify(value));
        outcome(() => loadConfig({ file, env: {} }), (origin) => origin === file);
      }),
      { numRuns: runs(300) },
    );
  });

  it('arbitrary JSON objects at every section: a config or a ConfigError naming path and file', () => {
    fc.assert(
      fc.property(fc.constantFrom(...OBJECT_PATHS), fc.dictionary(oddKey, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }), (path, value) => {
        const input = path === '' ? (value as JsonObject) : setIn({}, split(path), value as Json);
        const file = tempFile(JSON.stringify(input));
        outcome(() => loadConfig({ file, env: {} }), (origin) => origin === file);
      }),
      { numRuns: runs(300) },
    );
  });

  it('arbitrary text and bytes as the file (BOM, truncation, comments, binary)', () => {
    const valid = JSON.stringify({ sampling: { intervalMs: '2s' }, log: { level: 'warn' } });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.nat({ max: valid.length }).map((cut) => valid.slice(0, cut)),
          fc.constantFrom(`\uFEFF${valid}`, `// comment\n${valid}`, `${valid},`, valid.replace(':', '='), `${'['.repeat(100_000)}`, `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`),
          fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
        ),
        (text) => {
          const file = tempFile(text);
          outcome(() => loadConfig({ file, env: {} }), (origin) => origin === file);
        },
      ),
      { numRuns: runs(200) },
    );
  });

  it('valid configs with one mutation: the issue names the mutated path, from the file', () => {
    fc.assert(
      fc.property(validBase, mutationArb, (base, mutation) => {
        const { input, path } = mutate(base, mutation);
        const file = tempFile(JSON.stringify(input));
        const issues = outcome(() => loadConfig({ file, env: {} }), (origin) => origin === file);
        if (issues) expect(issues.some((issue) => related(issue.path, path)), `${path}: ${JSON.stringify(issues)}`).toBe(true);
        // An unknown key is never accepted (whatever its name, "__proto__" included).
        if (mutation.kind === 'unknownKey' && !(SHAPE.objects.get(mutation.path.join('.')) ?? []).includes(mutation.key)) expect(issues).not.toBeNull();
      }),
      { numRuns: runs(500) },
    );
  });
});

describe('regressions found by the fuzzing', () => {
  // src/app/config.ts joined raw keys with dots: an empty key gave the path "" (shown as "(root)"), and a
  // key with a dot in it named another setting ("sampling.intervalMs: unknown key" for {"sampling.intervalMs": 5}).
  it('odd keys are named exactly: quoted when empty or holding dots, spaces or quotes', () => {
    const issues = (load: () => unknown) => {
      try {
        load();
      } catch (error) {
        return (error as ConfigError).issues;
      }
      return [];
    };
    const file = tempFile('{"": 1, "sampling.intervalMs": 5, "log": {"a b": 1}}');
    expect(issues(() => loadConfig({ file, env: {} })).map((issue) => issue.path).sort()).toEqual(['""', '"sampling.intervalMs"', 'log."a b"']);
    expect(issues(() => loadConfig({ env: { MEMTIDE_: '1' } }))).toEqual([{ path: '""', message: 'unknown key', origin: 'MEMTIDE_' }]);
    expect(issues(() => loadConfig({ env: {}, set: ['.sampling=1'] }))).toEqual([{ path: '""', message: 'unknown key', origin: '--set .sampling' }]);
  });
});

describe('fuzz: deep nesting', () => {
  it('layers nested deeply along the same keys: a ConfigError naming path and layer, never a stack overflow', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('log', 'sampling', '__proto__', 'x'), fc.boolean(), (depth, key, viaBase) => {
        const nested = `${`{"${key}":`.repeat(depth)}1${'}'.repeat(depth)}`;
        const file = tempFile(nested);
        const set = [`${Array<string>(depth).fill(key).join('.')}=1`];
        outcome(() => loadConfig(viaBase ? { base: JSON.parse(nested) as never, env: {}, set } : { file, env: {}, set }), (origin) => [file, `--set ${set[0]!.slice(0, -2)}`, 'createMemtide() options'].includes(origin));
      }),
      { numRuns: runs(40) },
    );
  });

  // Regression (src/app/config.ts deepMerge recursed once per level): a file and a --set nested
  // 20 000 levels along the same key overflowed the stack with a RangeError instead of a ConfigError.
  it('regression: 20 000 levels in the file and in --set are a ConfigError, not a RangeError', () => {
    const depth = 20_000;
    const file = tempFile(`${'{"log":'.repeat(depth)}1${'}'.repeat(depth)}`);
    const issues = outcome(() => loadConfig({ file, env: {}, set: [`${Array<string>(depth).fill('log').join('.')}=1`] }), () => true);
    expect(issues?.[0]).toEqual({ path: Array<string>(32).fill('log').join('.'), message: 'nested more than 32 levels deep: no setting is', origin: file });
  });
});

describe('fuzz: the environment layer', () => {
  it('MEMTIDE_* variables for real and mutated paths with bad values: the issue names the variable', () => {
    const pathArb = fc.oneof(
      fc.constantFrom(...SHAPE.leaves).map(split),
      fc.tuple(fc.constantFrom(...OBJECT_PATHS).map(split), oddKey).map(([path, key]) => [...path, key]),
      fc.array(fc.string({ maxLength: 6 }), { minLength: 1, maxLength: 3 }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(pathArb, fc.constantFrom('snake', 'flat', 'camel') as fc.Arbitrary<'snake' | 'flat' | 'camel'>, fc.oneof(badValue.map(jsonText), fc.string({ maxLength: 12 }))), {
          minLength: 1,
          maxLength: 4,
        }),
        (vars) => {
          const env: Record<string, string> = {};
          for (const [path, style, value] of vars) env[envName(path, style)] = value;
          outcome(
            () => loadConfig({ env }),
            (origin) => Object.hasOwn(env, origin) && origin !== 'MEMTIDE_CONFIG' && origin !== 'MEMTIDE_TOKEN',
          );
        },
      ),
      { numRuns: runs(400) },
    );
  });

  it('arbitrary variable names and values (only MEMTIDE_* count)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.oneof(fc.string({ maxLength: 12 }).map((s) => `MEMTIDE_${s}`), fc.string({ maxLength: 8 })), fc.string({ maxLength: 12 }), { maxKeys: 5 }), (env) => {
        delete env.MEMTIDE_CONFIG;
        outcome(() => loadConfig({ env }), (origin) => Object.hasOwn(env, origin));
      }),
      { numRuns: runs(300) },
    );
  });
});

describe('fuzz: --set', () => {
  it('--set assignments for real and mutated paths: the issue names the flag', () => {
    const assignment = fc.oneof(
      fc.tuple(fc.constantFrom(...SHAPE.leaves), fc.oneof(badValue.map(jsonText), fc.string({ maxLength: 12 }))).map(([path, value]) => `${path}=${value}`),
      fc.tuple(fc.constantFrom(...OBJECT_PATHS), oddKey, fc.string({ maxLength: 8 })).map(([path, key, value]) => `${path ? `${path}.` : ''}${key}=${value}`),
      fc.string({ maxLength: 20 }),
      fc.constantFrom('=', '=5', 'sampling.intervalMs', 'sampling..intervalMs=5', '.sampling=1', '__proto__.polluted=1', 'constructor.prototype.polluted=1', 'sampling.__proto__.polluted=true', 'log=', 'log.level=', 'log.level="debug"'),
    );
    fc.assert(
      fc.property(fc.array(assignment, { minLength: 1, maxLength: 4 }), (set) => {
        outcome(() => loadConfig({ env: {}, set }), (origin) => origin === '--set' || set.some((a) => origin === `--set ${a.slice(0, a.indexOf('='))}`));
      }),
      { numRuns: runs(400) },
    );
  });

  it('all three layers at once: every issue is blamed on one of them', () => {
    fc.assert(
      fc.property(validBase, mutationArb, mutationArb, mutationArb, (base, inFile, inEnv, inFlag) => {
        const file = tempFile(JSON.stringify(mutate(base, inFile).input));
        const envPath = inEnv.kind === 'set' ? inEnv.path : [...inEnv.path, inEnv.key];
        const envVar = envName(envPath, 'snake');
        const assignment = `${(inFlag.kind === 'set' ? inFlag.path : [...inFlag.path, inFlag.key]).join('.')}=${jsonText(inFlag.value)}`;
        const env = { [envVar]: jsonText(inEnv.value) };
        outcome(
          () => loadConfig({ file, env, set: [assignment] }),
          (origin) => origin === file || origin === envVar || origin === '--set' || origin === `--set ${assignment.slice(0, assignment.indexOf('='))}`,
        );
      }),
      { numRuns: runs(300) },
    );
  });
});
