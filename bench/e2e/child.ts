/**
 * A child process of the bench with its output as lines, a way to wait for
 * a line, and a stop that escalates from SIGTERM to SIGKILL. Every child is
 * remembered so a failing run still leaves nothing behind (`stopAll`).
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly lines: string[];
  readonly stderr: () => string;
  /** Resolves with the first stdout/stderr line matching `pattern` (rejects if the child exits first or on timeout). */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(timeoutMs?: number): Promise<void>;
}

const live = new Set<Child>();

/** Environment without MEMTIDE_* variables (they would override the bench's configuration). */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('MEMTIDE_')) env[key] = value;
  return env;
}

export function startChild(command: string, args: string[], options: { cwd?: string; onLine?: (line: string) => void } = {}): Child {
  const child = spawn(command, args, { cwd: options.cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  const watchers: Array<(line: string) => void> = [];
  const onText = (kind: 'out' | 'err') => {
    let partial = '';
    return (text: string) => {
      if (kind === 'err') stderr = (stderr + text).slice(-50_000);
      partial += text;
      for (let end = partial.indexOf('\n'); end >= 0; end = partial.indexOf('\n')) {
        const line = partial.slice(0, end);
        partial = partial.slice(end + 1);
        if (kind === 'out') {
          lines.push(line);
          options.onLine?.(line);
        }
        for (const watch of watchers) watch(line);
      }
    };
  };
  child.stdout!.setEncoding('utf8').on('data', onText('out'));
  child.stderr!.setEncoding('utf8').on('data', onText('err'));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
    child.on('error', () => resolve({ code: -1, signal: null }));
  });
  const handle: Child = {
    process: child,
    pid: child.pid ?? -1,
    lines,
    stderr: () => stderr,
    waitForLine(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} from ${command} ${args.join(' ')}; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
        const watch = (line: string) => {
          const match = pattern.exec(line);
          if (!match) return;
          clearTimeout(timer);
          resolve(match);
        };
        watchers.push(watch);
        for (const line of lines) watch(line);
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`${command} ${args.join(' ')} exited (${signal ?? code}) before printing ${pattern}; stderr: ${stderr.slice(-2000)}`));
        });
      });
    },
    exited,
    async stop(timeoutMs = 10_000) {
      live.delete(handle);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs))]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  live.add(handle);
  void exited.then(() => live.delete(handle));
  return handle;
}

/** Stops every child still running (on failure or Ctrl-C). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => child.stop(3000)));
}
