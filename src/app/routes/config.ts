/**
 * The live config over HTTP: read it (with the keys changed at runtime), patch
 * it (validated by the one schema, applied from the next sample, no restart),
 * and its JSON Schema for editors and the settings view.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { configJsonSchema } from '../commands/config.js';
import { ConfigError, type ConfigIssue } from '../config.js';
import { HttpError, readBody, readJson, sendJson } from '../http.js';
import type { ConfigControl, RuntimeOverrides } from '../liveConfig.js';
import type { Memtide } from '../memtide.js';
import type { Route, RouteModule } from '../router.js';

export interface ConfigRoutesOptions {
  /** Where patches go; default the engine's own (`memtide.patchConfig`), when the handle has it. */
  control?: ConfigControl;
  /**
   * Sections read once at start (history file and retention, the server's
   * own address and token): a runtime patch could never take effect, since
   * patches end with the process, so they are refused. Edit the file and restart.
   */
  restartOnly?: readonly string[];
}

const DEFAULT_RESTART_ONLY = ['history', 'server'] as const;
const NO_OVERRIDES: RuntimeOverrides = { values: {}, paths: [] };

/** The Memtide handle once the lead exposes the live config's runtime layer on it. */
type PatchableMemtide = Memtide & {
  patchConfig?: (partial: unknown, origin?: string) => ReturnType<Memtide['config']>;
  configOverrides?: () => RuntimeOverrides;
};

/** `options.control`, else the handle's `patchConfig`/`configOverrides`, else none (PATCH answers 501). */
export function configControlOf(memtide: Memtide, explicit?: ConfigControl): ConfigControl | undefined {
  if (explicit) return explicit;
  const handle = memtide as PatchableMemtide;
  const { patchConfig, configOverrides } = handle;
  if (typeof patchConfig !== 'function' || typeof configOverrides !== 'function') return undefined;
  return {
    current: () => memtide.config(),
    patch: (partial, origin) => patchConfig.call(handle, partial, origin),
    overrides: () => configOverrides.call(handle),
  };
}

/** 400 with every issue (path, message, origin) and the first path as `field`, like every validation error. */
export function sendConfigError(res: ServerResponse, error: ConfigError): void {
  const issues = error.issues.map(({ path, message, origin }) => ({ path, message, origin }));
  sendJson(res, 400, { error: error.message, code: error.code, issues, field: issues[0]?.path ?? '' });
}

/**
 * JSON or JSON merge patch bodies (`application/json`, `application/merge-patch+json`),
 * size-limited; 415 for anything else.
 */
export async function readPatch(req: IncomingMessage, limitBytes: number): Promise<unknown> {
  if (!/^application\/merge-patch\+json\b/i.test(req.headers['content-type'] ?? '')) return readJson(req, limitBytes);
  const body = await readBody(req, limitBytes);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (error) {
    throw new HttpError(400, 'MEMTIDE_ERR_BAD_JSON', `request body is not valid JSON: ${(error as Error).message}`);
  }
}

/** Far deeper than any setting (the schema nests 5 levels): a deeper patch is refused before anything recurses into it. */
const MAX_PATCH_DEPTH = 32;

/**
 * Dotted paths of the values a patch sets or removes (its leaves), in order.
 * Iterative: a body nested 100 000 levels deep (well within the body limit) is a
 * ConfigError naming where it got too deep, not a stack overflow answered with a 500.
 */
function leafPaths(value: unknown, origin: string): string[] {
  const leaves: string[] = [];
  const stack: Array<[unknown, string[]]> = [[value, []]];
  while (stack.length > 0) {
    const [node, path] = stack.pop()!;
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      leaves.push(path.join('.'));
      continue;
    }
    if (path.length >= MAX_PATCH_DEPTH) {
      throw new ConfigError([{ path: path.join('.'), message: `nested more than ${MAX_PATCH_DEPTH} levels deep: no setting is`, origin }]);
    }
    const entries = Object.entries(node);
    if (entries.length === 0 && path.length > 0) leaves.push(path.join('.'));
    for (let i = entries.length - 1; i >= 0; i -= 1) stack.push([entries[i]![1], [...path, entries[i]![0]]]);
  }
  return leaves;
}

/** Issues for patched keys under sections that are only read at start. */
function restartOnlyIssues(patch: unknown, sections: readonly string[], origin: string): ConfigIssue[] {
  return leafPaths(patch, origin)
    .filter((path) => sections.some((section) => path === section || path.startsWith(`${section}.`)))
    .map((path) => ({ path, message: 'read once at start, so a runtime change would never apply: edit the config file and restart', origin }));
}

export function configRoutes(options: ConfigRoutesOptions = {}): RouteModule {
  return ({ memtide, logger, config }) => {
    const control = configControlOf(memtide, options.control);
    const restartOnly = options.restartOnly ?? DEFAULT_RESTART_ONLY;
    let schema: unknown;
    const view = () => ({ config: config(), overrides: control?.overrides() ?? NO_OVERRIDES, patchable: control !== undefined });

    const routes: Route[] = [
      { method: 'GET', path: '/api/config', handler: (_req, res) => sendJson(res, 200, view()) },
      {
        method: 'GET',
        path: '/api/config/schema',
        handler: (_req, res) => {
          schema ??= configJsonSchema();
          sendJson(res, 200, schema, { 'content-type': 'application/schema+json; charset=utf-8' });
        },
      },
      {
        method: 'PATCH',
        path: '/api/config',
        handler: async (req, res) => {
          const origin = 'PATCH /api/config';
          const patch = await readPatch(req, config().server.bodyLimitBytes);
          if (!control) {
            throw new HttpError(501, 'MEMTIDE_ERR_NOT_IMPLEMENTED', 'this engine does not expose runtime config changes (Memtide.patchConfig)');
          }
          try {
            const refused = restartOnlyIssues(patch, restartOnly, origin);
            if (refused.length) throw new ConfigError(refused);
            const before = JSON.stringify(config());
            control.patch(patch, origin);
            if (JSON.stringify(config()) !== before) logger.info(`config changed by ${origin}: ${leafPaths(patch, origin).join(', ')}`);
          } catch (error) {
            if (!(error instanceof ConfigError)) throw error;
            sendConfigError(res, error);
            return;
          }
          sendJson(res, 200, view());
        },
      },
    ];
    return { routes };
  };
}
