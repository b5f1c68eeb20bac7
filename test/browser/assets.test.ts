/**
 * The dashboard's route module over HTTP (no browser needed): the page and
 * its security headers, every asset the page references, content types,
 * ETag revalidation, HEAD, and that nothing outside the whitelist is served
 * whatever the path looks like.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBrowserBuild, startRunner, type Runner } from './harness.js';

/** A request with the path sent exactly as given (fetch would normalise `..`). */
function rawGet(base: string, rawPath: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: rawPath, method, headers: { host: `${hostname}:${port}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('dashboard routes', () => {
  let runner: Runner;

  beforeAll(async () => {
    ensureBrowserBuild();
    runner = await startRunner({ intervalMs: 1000 });
  }, 120_000);

  afterAll(async () => {
    await runner?.close();
  });

  it('serves the page with a CSP that allows exactly its import map, isolation headers, no referrer, no framing', async () => {
    const response = await fetch(`${runner.url}/index.html`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await response.text();
    const importMap = /<script type="importmap">([^<]*)<\/script>/.exec(html)?.[1] ?? '';
    const hash = createHash('sha256').update(importMap).digest('base64');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain(`script-src 'self' 'sha256-${hash}'`);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(response.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(response.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    // `/` serves the same page (from this module, or from the state routes while they still have their own `/`).
    expect(await (await fetch(`${runner.url}/`)).text()).toBe(html);
  });

  it('serves every script, stylesheet and import-map target the page names, with its content type', async () => {
    const html = await (await fetch(`${runner.url}/index.html`)).text();
    const urls = [
      ...[...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] as string),
      ...Object.values((JSON.parse(/<script type="importmap">([^<]*)<\/script>/.exec(html)?.[1] ?? '{}') as { imports: Record<string, string> }).imports),
      '/assets/js/browser/index.js',
      '/assets/js/app/dashboard/client/live.js',
    ];
    expect(urls.length).toBeGreaterThanOrEqual(7);
    for (const url of urls) {
      const response = await fetch(`${runner.url}${url}`);
      expect(response.status, url).toBe(200);
      const type = response.headers.get('content-type') ?? '';
      if (url.endsWith('.js')) expect(type, url).toBe('text/javascript; charset=utf-8');
      if (url.endsWith('.css')) expect(type, url).toBe('text/css; charset=utf-8');
      if (url.endsWith('.svg')) expect(type, url).toBe('image/svg+xml');
      expect(response.headers.get('x-content-type-options'), url).toBe('nosniff');
      expect(response.headers.get('cross-origin-resource-policy'), url).toBe('same-origin');
      const body = await response.text();
      expect(body.length, url).toBeGreaterThan(50);
      if (url.endsWith('.js')) expect(body, `${url} must not point at a source map we do not serve`).not.toMatch(/sourceMappingURL=index\.min\.js\.map/);
    }
    // The browser build's modules import each other relatively: the URL layout mirrors dist/.
    const main = await (await fetch(`${runner.url}/assets/js/app/dashboard/client/main.js`)).text();
    expect(main).toContain("from '../../../browser/idleCleanup.js'");
  });

  it('revalidates with ETag (304) and answers HEAD without a body', async () => {
    const first = await fetch(`${runner.url}/assets/vendor/uPlot.esm.js`);
    const etag = first.headers.get('etag') ?? '';
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect(first.headers.get('cache-control')).toBe('no-cache');
    await first.arrayBuffer();
    const again = await fetch(`${runner.url}/assets/vendor/uPlot.esm.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect((await again.arrayBuffer()).byteLength).toBe(0);
    const head = await rawGet(runner.url, '/assets/style.css', 'HEAD');
    expect(head).toEqual({ status: 200, body: '' });
  });

  it('serves nothing outside its whitelist, however the path is spelt', async () => {
    for (const path of [
      '/assets/../package.json',
      '/assets/%2e%2e/package.json',
      '/assets/js/..%2f..%2fpackage.json',
      '/assets/js/%2e%2e/%2e%2e/package.json',
      '/assets/vendor/..%5c..%5cpackage.json',
      '/assets/js/browser/index.ts',
      '/assets/js/browser/index.d.ts',
      '/assets/vendor/uPlot.esm.js%00.css',
      '/assets//etc/passwd',
      '/assets/js/app/routes/dashboard.js',
      '/assets/js/app/server.js',
    ]) {
      const { status, body } = await rawGet(runner.url, path);
      expect(status, path).toBe(404);
      expect(body, path).not.toContain('"name": "memtide"');
    }
    const post = await fetch(`${runner.url}/assets/style.css`, { method: 'POST', headers: { authorization: `Bearer ${runner.token}` } });
    expect(post.status).toBe(405);
  });

  it('names the missing build when a compiled script is asked for but absent', async () => {
    const response = await fetch(`${runner.url}/assets/js/browser/nope.js`);
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: string }).error).toMatch(/npm run build/);
  });
});
