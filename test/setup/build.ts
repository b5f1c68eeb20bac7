/**
 * Builds the CLI (`npm run build`) when `dist/app/cli.js` is missing or older
 * than any file under src/, so tests that spawn the built CLI never run stale
 * code. Used as a vitest `globalSetup` (default export) and, for files that
 * run without it, from a `beforeAll` (`ensureBuilt`). A lock directory keeps
 * parallel workers from running tsc over the same output at once.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI_PATH = path.join(REPO_ROOT, 'dist/app/cli.js');

const LOCK_DIR = path.join(os.tmpdir(), `memtide-build-${Buffer.from(REPO_ROOT).toString('hex').slice(-24)}.lock`);
const LOCK_STALE_MS = 120_000;

/** Newest mtime under `dir`; files that vanish meanwhile (editors' temporary files) are skipped. */
function newestMtimeMs(dir: string): number {
  let newest = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    const mtime = entry.isDirectory() ? newestMtimeMs(full) : (fs.statSync(full, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    if (mtime > newest) newest = mtime;
  }
  return newest;
}

function isStale(): boolean {
  let built: number;
  try {
    built = fs.statSync(CLI_PATH).mtimeMs;
  } catch {
    return true;
  }
  const inputs = Math.max(
    newestMtimeMs(path.join(REPO_ROOT, 'src')),
    fs.statSync(path.join(REPO_ROOT, 'tsconfig.build.json')).mtimeMs,
  );
  return inputs > built;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `npm run build` if the build is stale; throws with tsc's output when it fails. */
export async function ensureBuilt(): Promise<void> {
  if (!isStale()) return;
  const deadline = Date.now() + LOCK_STALE_MS;
  for (;;) {
    try {
      fs.mkdirSync(LOCK_DIR);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // Someone else is building: wait for them, then re-check.
      try {
        if (Date.now() - fs.statSync(LOCK_DIR).mtimeMs > LOCK_STALE_MS) fs.rmSync(LOCK_DIR, { recursive: true, force: true });
      } catch {
        // the lock vanished between the calls: retry
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the build lock ${LOCK_DIR}`);
      await sleep(200);
      if (!isStale()) return;
    }
  }
  try {
    if (!isStale()) return;
    try {
      execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'pipe', timeout: 120_000, encoding: 'utf8' });
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`npm run build failed:\n${e.stdout ?? ''}${e.stderr ?? ''}\n${e.message}`);
    }
  } finally {
    fs.rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}

export default async function setup(): Promise<void> {
  await ensureBuilt();
}
