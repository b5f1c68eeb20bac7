/**
 * Loading the configuration: defaults < optimization profile < code options <
 * file < environment < flags, validated once by the schema, then frozen. Every
 * error names the path of the bad key and where the value came from (file,
 * MEMTIDE_* variable or flag), so the fix is obvious from the message alone.
 *
 * The optimization profile (src/app/optimizationProfiles.ts) is chosen from
 * what the user's own layers say about `optimization.level`, `lowMemory` and
 * `observeOnly`, so resolution runs twice: the user's layers alone (their
 * errors are the user's, named by their layer), then again with the profile
 * layer slipped in just above the defaults.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { configSchema, type MemtideConfig, type MemtideConfigInput } from './configSchema.js';
import { profileLayer, profileShadowsIn, type ProfileShadow } from './optimizationProfiles.js';

export type { MemtideConfig, MemtideConfigInput } from './configSchema.js';
export type { ProfileShadow } from './optimizationProfiles.js';

export interface ConfigIssue {
  /** Dotted path, e.g. `sampling.intervalMs`. */
  path: string;
  message: string;
  /** Where the offending value came from: a file, `MEMTIDE_X`, `--flag`, or `defaults`. */
  origin: string;
}

export class ConfigError extends Error {
  readonly code = 'MEMTIDE_ERR_CONFIG';
  constructor(readonly issues: ConfigIssue[]) {
    super(`invalid configuration:\n${issues.map((i) => `  ${i.path || '(root)'}: ${i.message} (from ${i.origin})`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** One layer of configuration with a label for error messages. */
export interface ConfigLayer {
  origin: string;
  values: JsonObject;
  /** Per-path origin when the layer's values come from several places (env vars, flags). */
  origins?: Map<string, string>;
}

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Objects merge key by key; arrays and scalars replace (a rules list is replaced whole). */
export function deepMerge(base: JsonObject, over: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(base)) assign(out, key, value);
  for (const [key, value] of Object.entries(over)) {
    const current = Object.hasOwn(out, key) ? out[key] : undefined;
    assign(out, key, isObject(current) && isObject(value) ? deepMerge(current, value) : value);
  }
  return out;
}

/**
 * `out[key] = value` that also works for a key named `__proto__` (JSON.parse
 * makes it an own property; plain assignment would set the prototype and the
 * key would slip past the unknown-key check).
 */
function assign(out: JsonObject, key: string, value: Json): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Reads and JSON-parses a config file; errors name the file and the position. */
export function readConfigFile(path: string): ConfigLayer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError([{ path: '', message: `cannot read config file: ${reason}`, origin: path }]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([{ path: '', message: `not valid JSON: ${(error as Error).message}`, origin: path }]);
  }
  if (!isObject(parsed)) {
    throw new ConfigError([{ path: '', message: 'the file must hold a JSON object', origin: path }]);
  }
  return { origin: path, values: parsed };
}

/** Unwraps defaults, pipes and optionals down to the object schema that holds keys. */
function shapeOf(schema: z.ZodType | undefined): Record<string, z.ZodType> | null {
  let current = schema as { _zod?: { def: Record<string, unknown> } } | undefined;
  for (let depth = 0; current?._zod && depth < 10; depth += 1) {
    const def = current._zod.def;
    if (def.type === 'object') return def.shape as Record<string, z.ZodType>;
    current = (def.innerType ?? def.in) as typeof current;
  }
  return null;
}

const normalise = (segment: string) => segment.toLowerCase().replaceAll('_', '');

/**
 * `MEMTIDE_SAMPLING__INTERVAL_MS=500` → `sampling.intervalMs = 500`.
 * `__` separates levels; within a level `_` is ignored and case does not
 * matter, so each segment is matched against the schema's own keys. Values are
 * JSON when they parse as JSON (numbers, booleans, arrays), else strings.
 */
export function envLayer(env: NodeJS.ProcessEnv, reserved: readonly string[] = ['MEMTIDE_CONFIG', 'MEMTIDE_TOKEN']): ConfigLayer {
  const values: JsonObject = {};
  const origins = new Map<string, string>();
  const issues: ConfigIssue[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('MEMTIDE_') || reserved.includes(name) || raw === undefined) continue;
    const segments = name.slice('MEMTIDE_'.length).split('__');
    const path: string[] = [];
    let shape = shapeOf(configSchema);
    for (const segment of segments) {
      const key = shape ? Object.keys(shape).find((k) => normalise(k) === normalise(segment)) : undefined;
      if (!key || !shape) {
        path.push(segment.toLowerCase());
        break;
      }
      path.push(key);
      shape = shapeOf(shape[key]);
    }
    if (path.length !== segments.length || !path.every((p, i) => normalise(p) === normalise(segments[i] ?? ''))) {
      issues.push({ path: displayPath(path), message: 'unknown configuration key', origin: name });
      continue;
    }
    setPath(values, path, parseScalar(raw));
    origins.set(path.join('.'), name);
  }
  if (issues.length) throw new ConfigError(issues);
  return { origin: 'environment', values, origins };
}

function parseScalar(raw: string): Json {
  try {
    return JSON.parse(raw) as Json;
  } catch {
    return raw;
  }
}

/** Sets `values[a][b][c] = value`, creating objects on the way. */
export function setPath(values: JsonObject, path: readonly string[], value: Json): void {
  let node = values;
  path.forEach((key, index) => {
    if (index === path.length - 1) {
      assign(node, key, value);
      return;
    }
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    if (isObject(next)) {
      node = next;
    } else {
      const created: JsonObject = {};
      assign(node, key, created);
      node = created;
    }
  });
}

/** `--set sampling.intervalMs=500ms` pairs, plus named flags already mapped to paths by the CLI. */
export function flagLayer(assignments: readonly string[], named: Record<string, Json | undefined> = {}): ConfigLayer {
  const values: JsonObject = {};
  const origins = new Map<string, string>();
  for (const assignment of assignments) {
    const eq = assignment.indexOf('=');
    if (eq <= 0) {
      throw new ConfigError([{ path: assignment, message: 'expected KEY=VALUE, e.g. sampling.intervalMs=500ms', origin: '--set' }]);
    }
    const path = assignment.slice(0, eq);
    setPath(values, path.split('.'), parseScalar(assignment.slice(eq + 1)));
    origins.set(path, `--set ${path}`);
  }
  for (const [path, value] of Object.entries(named)) {
    if (value === undefined) continue;
    setPath(values, path.split('.'), value);
    origins.set(path, 'command-line flag');
  }
  return { origin: 'flags', values, origins };
}

/**
 * Merges exactly these layers in order and validates (no profile is added);
 * throws ConfigError with every issue found, each naming the layer to blame.
 */
export function validateLayers(layers: readonly ConfigLayer[]): MemtideConfig {
  const tooDeep = layers.flatMap(nestedTooDeep);
  if (tooDeep.length) throw new ConfigError(tooDeep);
  const merged = layers.reduce<JsonObject>((acc, layer) => deepMerge(acc, layer.values), {});
  const result = configSchema.safeParse(merged as MemtideConfigInput);
  if (result.success) return deepFreeze(result.data);
  throw new ConfigError(result.error.issues.flatMap((issue) => toIssues(issue, layers)));
}

/**
 * The user's layers with the optimization profile they select inserted
 * first (just above the defaults, below code options), and the user's layers
 * resolved alone. Throws the user's own ConfigError when their layers are invalid.
 */
export function withProfileLayer(layers: readonly ConfigLayer[]): { user: MemtideConfig; layers: ConfigLayer[] } {
  const user = validateLayers(layers);
  return { user, layers: [profileLayer(user), ...layers] };
}

/** The user's layers plus the profile they select, merged and validated; throws ConfigError with every issue found. */
export function resolveConfig(layers: readonly ConfigLayer[]): MemtideConfig {
  return validateLayers(withProfileLayer(layers).layers);
}

/**
 * Where the value in force at `path` comes from: the user layer that set it
 * (file, `MEMTIDE_X`, flag, runtime origin), `optimization profile <name>`,
 * or `defaults`.
 */
export function settingOrigin(path: string, layers: readonly ConfigLayer[]): string {
  return originOf(path.split('.'), withProfileLayer(layers).layers);
}

/**
 * The settings of the selected optimization profile that the user's own
 * settings took the place of (`yours` is in force, `profile` is what the
 * level would have set), each with the layer of the user setting responsible.
 */
export function profileShadows(layers: readonly ConfigLayer[]): ProfileShadow[] {
  return profileShadowsIn(resolveConfig(layers), (path) => originOf(path.split('.'), layers));
}

function toIssues(issue: z.core.$ZodIssue, layers: readonly ConfigLayer[]): ConfigIssue[] {
  const base = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const path = [...base, key];
      return { path: displayPath(path), message: 'unknown key', origin: originOf(path, layers) };
    });
  }
  return [{ path: displayPath(base), message: issue.message, origin: originOf(base, layers) }];
}

/** Far deeper than any setting (the schema nests 5 levels): merging deeper objects only risks the stack. */
const MAX_DEPTH = 32;

/** Objects or arrays nested past MAX_DEPTH in a layer, found without recursion: the first such path, cut there. */
function nestedTooDeep(layer: ConfigLayer): ConfigIssue[] {
  const stack: Array<[Json, string[]]> = [[layer.values, []]];
  while (stack.length) {
    const [node, path] = stack.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    if (path.length >= MAX_DEPTH) {
      return [{ path: displayPath(path), message: `nested more than ${MAX_DEPTH} levels deep: no setting is`, origin: originWithin(layer, path.join('.')) }];
    }
    for (const [key, value] of Object.entries(node)) stack.push([value, [...path, key]]);
  }
  return [];
}

/**
 * The dotted path of an issue; a key that is empty or has dots, spaces or
 * quotes is written as a JSON string (`sampling."a.b"`, `""`), so the path
 * names that key and not another one (or nothing).
 */
function displayPath(segments: readonly string[]): string {
  return segments.map((key) => (/^[^\s."\\\u0000-\u001f]+$/.test(key) ? key : JSON.stringify(key))).join('.');
}

/**
 * The last layer that set this exact path is to blame; failing that, the last
 * that set its closest parent (an object replaced whole, a rules array).
 */
function originOf(path: readonly string[], layers: readonly ConfigLayer[]): string {
  const reversed = [...layers].reverse();
  for (let length = path.length; length >= 1; length -= 1) {
    const prefix = path.slice(0, length);
    for (const layer of reversed) {
      if (hasPath(layer.values, prefix)) return originWithin(layer, prefix.join('.'));
    }
  }
  return 'defaults';
}

/** The variable or flag inside a layer that set `dotted` (or something below it). */
function originWithin(layer: ConfigLayer, dotted: string): string {
  if (!layer.origins) return layer.origin;
  const exact = layer.origins.get(dotted);
  if (exact) return exact;
  for (const [path, origin] of layer.origins) if (path.startsWith(`${dotted}.`) || dotted.startsWith(`${path}.`)) return origin;
  return layer.origin;
}

function hasPath(values: Json, path: readonly string[]): boolean {
  let node: Json | undefined = values;
  for (const key of path) {
    if (!isObject(node) && !Array.isArray(node)) return false;
    if (!Object.hasOwn(node, key)) return false;
    node = (node as Record<string, Json>)[key];
  }
  return true;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

export interface LoadConfigOptions {
  /** Config file; when absent, `MEMTIDE_CONFIG` or nothing. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** `--set` assignments. */
  set?: readonly string[];
  /** Named flags already mapped to config paths, e.g. `{ 'history.path': 'x.db' }`. */
  flags?: Record<string, Json | undefined>;
  /** Values given in code (embedding API); they sit between defaults and the file. */
  base?: MemtideConfigInput;
}

/** The layers for one load, in precedence order (later wins). */
export function configLayers(options: LoadConfigOptions = {}): ConfigLayer[] {
  const env = options.env ?? process.env;
  const layers: ConfigLayer[] = [];
  if (options.base) layers.push({ origin: 'createMemtide() options', values: options.base as JsonObject });
  const file = options.file ?? env.MEMTIDE_CONFIG;
  if (file) layers.push(readConfigFile(file));
  layers.push(envLayer(env));
  layers.push(flagLayer(options.set ?? [], options.flags));
  return layers;
}

/** defaults < optimization profile < base < file < env < flags, validated and frozen. */
export function loadConfig(options: LoadConfigOptions = {}): MemtideConfig {
  return resolveConfig(configLayers(options));
}
