/**
 * The configuration as an observable. The file and the control API may change
 * it while memtide runs; a valid change applies from the next sample on, an
 * invalid one keeps the last good config and is reported.
 *
 * Layers, later wins: defaults < optimization profile < code
 * (`createMemtide` options) < file < MEMTIDE_* environment < flags <
 * **runtime patches** (the control API). The profile is re-chosen at every
 * resolution from the level the user layers (patches included) resolve to,
 * so patching `optimization.level` applies its profile at once and patching
 * it back to `null` restores the file's.
 * Runtime patches last until the process stops: they are never written to
 * the file. A later file edit re-reads the file (and the environment) but
 * keeps the runtime patches on top, so an API change is not silently undone
 * by an unrelated edit; a patch sets a key back to the lower layers with
 * `null` (JSON merge patch, RFC 7386).
 */
import { BehaviorSubject, Subject, type Observable, type Subscription, distinctUntilChanged } from 'rxjs';
import { fileChanges } from '../sources/fileChanges.js';
import {
  ConfigError,
  configLayers,
  profileShadows,
  resolveConfig,
  type ConfigLayer,
  type LoadConfigOptions,
  type MemtideConfig,
  type ProfileShadow,
} from './config.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** The runtime layer: what API patches changed, and who changed each key. */
export interface RuntimeOverrides {
  /** The merged patches, as a config fragment (units as the caller wrote them). */
  values: JsonObject;
  /** Every key set at runtime (dotted path to a value) with the origin of its latest patch. */
  paths: Array<{ path: string; origin: string }>;
}

/** What the control API needs: read the config, patch it at runtime, list the runtime keys. */
export interface ConfigControl {
  current(): MemtideConfig;
  /**
   * Applies a JSON merge patch (RFC 7386) to the runtime layer: objects merge
   * key by key, `null` removes the runtime value of a key (the lower layers
   * apply again), anything else replaces. The result of every layer plus all
   * runtime patches is validated by the one schema; when valid it is applied
   * (emitted on `config$`) and returned, otherwise nothing changes and a
   * ConfigError naming every offending path is thrown.
   */
  patch(partial: unknown, origin?: string): MemtideConfig;
  overrides(): RuntimeOverrides;
  /**
   * The optimization profile's settings that the user's own settings (any
   * layer, runtime patches included) took the place of, with their origin.
   * Optional: a control built from a bare `Memtide` handle cannot see the layers.
   */
  profileShadows?(): ProfileShadow[];
}

export interface LiveConfig extends ConfigControl {
  /** Current config; replays the latest value to new subscribers. */
  readonly config$: Observable<MemtideConfig>;
  /** Rejected file edits, with every issue named by path (rejected patches are thrown to their caller instead). */
  readonly errors$: Observable<ConfigError>;
  /** Re-reads the file and environment, keeping the flags and runtime patches; returns the error when the result is invalid. */
  reload(): ConfigError | null;
  /** Always available here: the live config holds every layer. */
  profileShadows(): ProfileShadow[];
  stop(): void;
}

const sameConfig = (a: MemtideConfig, b: MemtideConfig) => JSON.stringify(a) === JSON.stringify(b);

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/** `out[key] = value`, also for a key named `__proto__` (see config.ts: it must stay an own, unknown key). */
function assign(out: JsonObject, key: string, value: Json): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

const own = (object: JsonObject, key: string): Json | undefined => (Object.hasOwn(object, key) ? object[key] : undefined);

/** Drops `dotted` and everything below it from the origins map. */
function forget(origins: Map<string, string>, dotted: string): void {
  for (const path of [...origins.keys()]) if (path === dotted || path.startsWith(`${dotted}.`)) origins.delete(path);
}

/**
 * RFC 7386 applied to the runtime layer (a new object; `target` is not
 * changed). Objects left empty by `null`s are removed, so the layer never
 * holds keys that override nothing.
 */
function mergePatch(target: JsonObject, patch: JsonObject, origins: Map<string, string>, origin: string, prefix = ''): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(target)) assign(out, key, value);
  for (const [key, value] of Object.entries(patch)) {
    const dotted = prefix ? `${prefix}.${key}` : key;
    if (value === null) {
      delete out[key];
      forget(origins, dotted);
    } else if (isObject(value)) {
      const current = own(out, key);
      if (!isObject(current)) forget(origins, dotted);
      const merged = mergePatch(isObject(current) ? current : {}, value, origins, origin, dotted);
      if (Object.keys(merged).length > 0) assign(out, key, merged);
      else delete out[key];
    } else {
      forget(origins, dotted);
      assign(out, key, value);
      origins.set(dotted, origin);
    }
  }
  return out;
}

/** A JSON copy of the caller's value: later changes to their object cannot reach the config. */
function jsonCopy(value: unknown, origin: string): JsonObject {
  let copy: unknown;
  try {
    copy = JSON.parse(JSON.stringify(value) ?? 'null');
  } catch (error) {
    throw new ConfigError([{ path: '', message: `a config patch must be JSON: ${(error as Error).message}`, origin }]);
  }
  if (!isObject(copy)) throw new ConfigError([{ path: '', message: 'a config patch must be a JSON object', origin }]);
  return copy;
}

/**
 * Loads the config (throws ConfigError when the first load is invalid: there
 * is no last good config to fall back to) and, when a file is used, watches it.
 */
export function createLiveConfig(options: LoadConfigOptions & { watch?: boolean } = {}): LiveConfig {
  // The file/env/flags layers of the config in force; patches are validated on top of these,
  // so a broken file edit (rejected, not in force) does not make every API patch fail too.
  let baseLayers = configLayers(options);
  let runtime: ConfigLayer = { origin: 'runtime', values: {}, origins: new Map() };
  const subject = new BehaviorSubject<MemtideConfig>(resolveConfig([...baseLayers, runtime]));
  const errors = new Subject<ConfigError>();
  const file = options.file ?? (options.env ?? process.env).MEMTIDE_CONFIG;

  const reload = (): ConfigError | null => {
    try {
      const layers = configLayers(options);
      subject.next(resolveConfig([...layers, runtime]));
      baseLayers = layers;
      return null;
    } catch (error) {
      const configError = error instanceof ConfigError ? error : new ConfigError([{ path: '', message: String(error), origin: file ?? 'config' }]);
      errors.next(configError);
      return configError;
    }
  };

  const patch = (partial: unknown, origin = 'PATCH /api/config'): MemtideConfig => {
    const origins = new Map(runtime.origins);
    const values = mergePatch(runtime.values, jsonCopy(partial, origin), origins, origin);
    const next: ConfigLayer = { origin, values, origins };
    const config = resolveConfig([...baseLayers, next]);
    runtime = next;
    subject.next(config);
    return config;
  };

  let watching: Subscription | undefined;
  if (file && options.watch !== false) {
    watching = fileChanges(file).subscribe({
      next: () => reload(),
      error: (error: unknown) => errors.next(new ConfigError([{ path: '', message: `cannot watch the file any more: ${String(error)}`, origin: file }])),
    });
  }

  return {
    config$: subject.pipe(distinctUntilChanged(sameConfig)),
    errors$: errors.asObservable(),
    current: () => subject.getValue(),
    reload,
    patch,
    overrides: () => ({
      values: structuredClone(runtime.values),
      paths: [...(runtime.origins ?? new Map<string, string>())].map(([path, origin]) => ({ path, origin })).sort((a, b) => a.path.localeCompare(b.path)),
    }),
    profileShadows: () => profileShadows([...baseLayers, runtime]),
    stop() {
      watching?.unsubscribe();
      subject.complete();
      errors.complete();
    },
  };
}
