/**
 * One-click actions of the dashboard, as thin wrappers over runtime config
 * patches (so they validate, apply and show up as overrides exactly like a
 * `PATCH /api/config`): switch the pressure preset, low-memory mode, the
 * optimization level (`optimization.*`, given their meaning by the
 * coordinator). A custom `paths` option naming keys the schema lacks gets 501.
 *
 * The level and low-memory actions also answer `shadowed`: the settings of
 * the profile now in force that the user's own settings kept from changing
 * (`[{ path, yours, profile, origin? }]`), so the dashboard can say why a
 * level did not change something (docs/optimization.md).
 */
import { PRESETS } from '../configSchema.js';
import { OPTIMIZATION_LEVELS } from '../schema/optimization.js';
import { ConfigError, type ProfileShadow } from '../config.js';
import { HttpError, readJson, sendJson } from '../http.js';
import type { ConfigControl } from '../liveConfig.js';
import type { Route, RouteModule } from '../router.js';
import { profileShadowsIn } from '../optimizationProfiles.js';
import { configControlOf, sendConfigError } from './config.js';

export interface ActionsRoutesOptions {
  /** Where patches go; default the engine's own (see `configRoutes`). */
  control?: ConfigControl;
  /** Config keys the actions set (dotted); the defaults are where the coordinator is expected to put them. */
  paths?: { lowMemory?: string; optimizationLevel?: string };
}

const DEFAULT_PATHS = { lowMemory: 'optimization.lowMemory', optimizationLevel: 'optimization.level' };

/** `{ a: { b: value } }` for `a.b`. */
function patchAt(dotted: string, value: unknown): Record<string, unknown> {
  return dotted
    .split('.')
    .reverse()
    .reduce<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;
}

/** The one field of an action's body, checked: 400 naming it otherwise. */
/** The value a client sent, for an error message: at most 80 characters, and never a stack overflow on a deeply nested one. */
export function previewValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch {
    // JSON.stringify recurses: a body nested thousands of levels deep overflows the stack.
    return `${Array.isArray(value) ? 'an array' : 'an object'} nested too deeply to show`;
  }
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function field<T>(body: unknown, name: string, check: (value: unknown) => value is T, expected: string): T {
  const value = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)[name] : undefined;
  if (!check(value)) throw new HttpError(400, 'MEMTIDE_ERR_BAD_REQUEST', `${name}: expected ${expected}, got ${previewValue(value)}`, name);
  return value;
}

const oneOf =
  <T extends string>(allowed: readonly T[]) =>
  (value: unknown): value is T =>
    typeof value === 'string' && (allowed as readonly string[]).includes(value);
const isBoolean = (value: unknown): value is boolean => typeof value === 'boolean';

export function actionsRoutes(options: ActionsRoutesOptions = {}): RouteModule {
  return ({ memtide, config }) => {
    const control = configControlOf(memtide, options.control);
    const paths = { ...DEFAULT_PATHS, ...options.paths };

    /**
     * Profile settings your own settings shadow. The live config knows every
     * layer and names the origin; a control built from a bare handle only has
     * the effective config, which is still enough to tell which values differ.
     */
    const shadowed = (): ProfileShadow[] => control?.profileShadows?.() ?? profileShadowsIn(config());

    /** Applies `value` at `path`; 501 when the schema has no such key yet, 400 when the value is refused. */
    const apply = (action: string, path: string, value: unknown, res: Parameters<Route['handler']>[1], withShadows = false) => {
      if (!control) throw new HttpError(501, 'MEMTIDE_ERR_NOT_IMPLEMENTED', 'this engine does not expose runtime config changes (Memtide.patchConfig)');
      try {
        control.patch(patchAt(path, value), `POST /api/actions/${action}`);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        const missing = error.issues.some((issue) => issue.message === 'unknown key' && (issue.path === path || path.startsWith(`${issue.path}.`)));
        if (missing) {
          throw new HttpError(
            501,
            'MEMTIDE_ERR_NOT_IMPLEMENTED',
            `${action} is not available yet: the config has no "${path}" setting (it comes with the optimization coordinator)`,
          );
        }
        sendConfigError(res, error);
        return;
      }
      sendJson(res, 200, { action, path, value, config: config(), ...(withShadows ? { shadowed: shadowed() } : {}) });
    };

    const routes: Route[] = [
      {
        method: 'POST',
        path: '/api/actions/preset',
        handler: async (req, res) => {
          const body = await readJson(req, config().server.bodyLimitBytes);
          const allowed = ['auto', ...PRESETS] as const;
          const preset = field(body, 'preset', oneOf(allowed), allowed.join(' | '));
          apply('preset', 'pressure.preset', preset, res);
        },
      },
      {
        method: 'POST',
        path: '/api/actions/low-memory',
        handler: async (req, res) => {
          const body = await readJson(req, config().server.bodyLimitBytes);
          apply('low-memory', paths.lowMemory, field(body, 'enabled', isBoolean, 'true | false'), res, true);
        },
      },
      {
        method: 'POST',
        path: '/api/actions/optimization-level',
        handler: async (req, res) => {
          const body = await readJson(req, config().server.bodyLimitBytes);
          const level = field(body, 'level', oneOf(OPTIMIZATION_LEVELS), OPTIMIZATION_LEVELS.join(' | '));
          apply('optimization-level', paths.optimizationLevel, level, res, true);
        },
      },
    ];
    return { routes };
  };
}
