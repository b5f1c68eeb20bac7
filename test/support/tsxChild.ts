/**
 * A Node child that runs a TypeScript (or JavaScript) script through tsx's
 * loader, from the repository root, with a minimal environment and its output
 * collected: what tests that need a process of their own (a soak day, an
 * embedding host, a parent to kill) share.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { REPO_ROOT } from '../setup/build.js';

export interface TsxChild {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** Everything written to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** The exit code (null when a signal ended it). */
  closed: Promise<number | null>;
  /** SIGKILL, unless it has ended already. */
  kill(): void;
}

/** `node [nodeArgs] --import tsx script ...args`, cwd the repository root (where `--import tsx` resolves). */
export function spawnTsx(script: string, args: readonly string[] = [], options: { nodeArgs?: readonly string[] } = {}): TsxChild {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', script, ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    closed,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
