/**
 * The day's child programs (fake Ollama, both simulated Meetilys) bundled to
 * plain JavaScript with tsx's esbuild, packages left external, so they run
 * under plain `node`: the tsx loader alone costs ~50 MB a process, which
 * would be counted as Meetily's or Ollama's memory. The bundles go to
 * `.tmp/` in the repository (ignored by git) so `node_modules` resolves.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../..');

export interface Bundles {
  dir: string;
  ollama: string;
  baseline: string;
  memtide: string;
  remove(): void;
}

export async function bundleChildren(): Promise<Bundles> {
  type Esbuild = { build(options: Record<string, unknown>): Promise<unknown> };
  const fromTsx = createRequire(createRequire(import.meta.url).resolve('tsx/package.json'));
  const esbuild = fromTsx('esbuild') as Esbuild;
  const dir = path.join(REPO_ROOT, '.tmp', `bench-e2e-${process.pid}-${Date.now()}`);
  fs.mkdirSync(dir, { recursive: true });
  await esbuild.build({
    entryPoints: {
      'memtide-e2e-ollama': path.join(HERE, 'ollamaMain.ts'),
      'memtide-e2e-meetily-baseline': path.join(HERE, 'sim/baselineMain.ts'),
      'memtide-e2e-meetily-memtide': path.join(HERE, 'sim/governedMain.ts'),
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    logLevel: 'error',
  });
  return {
    dir,
    ollama: path.join(dir, 'memtide-e2e-ollama.mjs'),
    baseline: path.join(dir, 'memtide-e2e-meetily-baseline.mjs'),
    memtide: path.join(dir, 'memtide-e2e-meetily-memtide.mjs'),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
