/**
 * The dashboard: its HTML page at `/`, and its static assets under
 * `/assets/`: the stylesheet and icon, the browser build (the page's scripts
 * and the memory kit, compiled by tsconfig.browser.json into `dist/`), and
 * uPlot and lru-cache read from node_modules (no CDN).
 *
 * Only whitelisted files are served: a request path is looked up in a table
 * of known files (built from fixed names and from listing the two build
 * directories), never joined onto a directory, so `..`, encoded slashes or
 * absolute paths cannot reach anything else. Every answer has an ETag and
 * `cache-control: no-cache` (revalidated on each load: a 304 costs nothing on
 * loopback, and a rebuilt dashboard is never stale).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DASHBOARD_CSS, DASHBOARD_ICON, DASHBOARD_SHELL, PAGE_HEADERS } from '../dashboard/page.js';
import { HttpError } from '../http.js';
import type { Route, RouteModule } from '../router.js';

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.html': 'text/html; charset=utf-8',
};

/** Where the browser build lives, relative to the package root (see tsconfig.browser.json). */
const BUILD_DIRS = ['dist/browser', 'dist/app/dashboard/client'] as const;

type Asset = { kind: 'text'; body: string; type: string } | { kind: 'file'; file: string; type: string; transform?: (text: string) => string };

/** The package root: the nearest directory up from this file with memtide's package.json (src/ in tests, dist/ installed). */
export function packageRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'memtide') return dir;
      } catch {
        // not a readable manifest: keep looking
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`memtide's package.json not found above ${from}`);
    dir = parent;
  }
}

/** Root directory of an installed package, from any file `require.resolve` finds in it. */
function packageDir(require: NodeRequire, name: string): string {
  let dir = path.dirname(require.resolve(name));
  while (!existsSync(path.join(dir, 'package.json')) || (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name !== name) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`package directory of ${name} not found`);
    dir = parent;
  }
  return dir;
}

/** Source-map comments would make the browser ask for maps we do not ship. */
const dropSourceMapComment = (text: string) => text.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');

function vendorAssets(): Map<string, Asset> {
  const require = createRequire(import.meta.url);
  const assets = new Map<string, Asset>();
  assets.set('/assets/vendor/uPlot.esm.js', { kind: 'file', file: require.resolve('uplot/dist/uPlot.esm.js'), type: CONTENT_TYPES['.js'] as string });
  assets.set('/assets/vendor/uPlot.min.css', { kind: 'file', file: require.resolve('uplot/dist/uPlot.min.css'), type: CONTENT_TYPES['.css'] as string });
  // lru-cache's browser build is one self-contained ES module.
  assets.set('/assets/vendor/lru-cache.js', {
    kind: 'file',
    file: path.join(packageDir(require, 'lru-cache'), 'dist/esm/browser/index.min.js'),
    type: CONTENT_TYPES['.js'] as string,
    transform: dropSourceMapComment,
  });
  return assets;
}

/** Lists the compiled browser files (`.js` and their maps) as `/assets/js/<path under dist>`. */
function buildAssets(root: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // not built yet
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/\.js(\.map)?$/.test(entry.name)) {
        const url = `/assets/js/${path.relative(path.join(root, 'dist'), full).split(path.sep).join('/')}`;
        assets.set(url, { kind: 'file', file: full, type: CONTENT_TYPES[entry.name.endsWith('.map') ? '.map' : '.js'] as string });
      }
    }
  };
  for (const dir of BUILD_DIRS) walk(path.join(root, dir));
  return assets;
}

const etagOf = (body: string | Buffer) => `"${createHash('sha1').update(body).digest('base64url')}"`;

function send(req: IncomingMessage, res: ServerResponse, body: string | Buffer, type: string, extra: Record<string, string> = {}): void {
  const etag = etagOf(body);
  const headers = { etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', 'cross-origin-resource-policy': 'same-origin', ...extra };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-type': type, 'content-length': String(Buffer.byteLength(body)) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export interface DashboardRoutesOptions {
  /** Package root holding `dist/` (default: found from this file). */
  root?: string;
}

/** Builds the dashboard module; `dashboardRoutes` is it with the defaults. */
export function createDashboardRoutes(options: DashboardRoutesOptions = {}): RouteModule {
  return () => {
    const root = options.root ?? packageRoot();
    const fixed = new Map<string, Asset>([
      ['/assets/style.css', { kind: 'text', body: DASHBOARD_CSS, type: CONTENT_TYPES['.css'] as string }],
      ['/assets/icon.svg', { kind: 'text', body: DASHBOARD_ICON, type: CONTENT_TYPES['.svg'] as string }],
      ...vendorAssets(),
    ]);
    let built = buildAssets(root);
    let lastScanMs = Date.now();
    /** File contents by path, re-read when the file changes (a rebuild while the runner runs). */
    const contents = new Map<string, { mtimeMs: number; size: number; body: Buffer }>();

    const read = (asset: Extract<Asset, { kind: 'file' }>): Buffer => {
      const stat = statSync(asset.file);
      const cached = contents.get(asset.file);
      if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached.body;
      const raw = readFileSync(asset.file);
      const body = asset.transform ? Buffer.from(asset.transform(raw.toString('utf8'))) : raw;
      contents.set(asset.file, { mtimeMs: stat.mtimeMs, size: stat.size, body });
      return body;
    };

    const lookup = (pathname: string): Asset | undefined => {
      const known = fixed.get(pathname) ?? built.get(pathname);
      if (known || !pathname.startsWith('/assets/js/')) return known;
      // A file added by a build after the start: list the build directories again (at most once a second).
      if (Date.now() - lastScanMs > 1000) {
        built = buildAssets(root);
        lastScanMs = Date.now();
      }
      return built.get(pathname);
    };

    const servePage = (req: IncomingMessage, res: ServerResponse) => send(req, res, DASHBOARD_SHELL, CONTENT_TYPES['.html'] as string, { ...PAGE_HEADERS });

    const serveAsset = (req: IncomingMessage, res: ServerResponse, _params: Record<string, string>, url: URL) => {
      const asset = lookup(url.pathname);
      if (!asset) {
        const hint = url.pathname.startsWith('/assets/js/') ? ' (the browser build is missing? run npm run build)' : '';
        throw new HttpError(404, 'MEMTIDE_ERR_NOT_FOUND', `no such asset: ${url.pathname}${hint}`);
      }
      if (asset.kind === 'text') {
        send(req, res, asset.body, asset.type);
        return;
      }
      let body: Buffer;
      try {
        body = read(asset);
      } catch {
        contents.delete(asset.file);
        throw new HttpError(404, 'MEMTIDE_ERR_NOT_FOUND', `asset ${url.pathname} is listed but its file is gone (rebuilding?)`);
      }
      send(req, res, body, asset.type);
    };

    // The router matches one segment per `:name`; these patterns cover the asset tree's depths.
    const assetPatterns = ['/assets/:a', '/assets/:a/:b', '/assets/:a/:b/:c', '/assets/:a/:b/:c/:d', '/assets/:a/:b/:c/:d/:e'];
    const routes: Route[] = [
      { method: 'GET', path: '/', handler: servePage },
      { method: 'GET', path: '/index.html', handler: servePage },
      ...assetPatterns.map((pattern): Route => ({ method: 'GET', path: pattern, handler: serveAsset })),
    ];
    return { routes };
  };
}

export const dashboardRoutes: RouteModule = createDashboardRoutes();
