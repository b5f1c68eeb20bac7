/**
 * The built CLI as a user runs it: `memtide sample` against real processes
 * named like Meetily's (copies of /bin/sleep), plus usage errors and `config`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, ensureBuilt } from './setup/build.js';
import { cleanEnv } from './support/cliEnv.js';

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let tmp: string;
const children: ChildProcess[] = [];

/** Runs `node dist/app/cli.js ...args` to completion (bounded), in the temp dir. */
function cli(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      cwd: tmp,
      env: cleanEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`memtide ${args.join(' ')} did not exit within ${options.timeoutMs ?? 15_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 15_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

beforeAll(async () => {
  await ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-cli-sample-'));
});

afterAll(() => {
  killAll();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe.runIf(process.platform === 'linux')('memtide sample with Meetily-like processes', () => {
  /** name -> the component the default rules give it */
  const FAKES = { ollama: 'ollama', 'whisper-server': 'audio', 'llama-helper': 'ollama' } as const;
  const pids = new Map<string, number>();

  beforeAll(async () => {
    const sleepBin = execFileSync('which', ['sleep'], { encoding: 'utf8' }).trim();
    const binDir = path.join(tmp, 'bin');
    fs.mkdirSync(binDir);
    for (const name of Object.keys(FAKES)) {
      const copy = path.join(binDir, name);
      fs.copyFileSync(sleepBin, copy);
      fs.chmodSync(copy, 0o755);
      const child = spawn(copy, ['60'], { stdio: 'ignore' });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      pids.set(name, child.pid!);
    }
    // The kernel sets comm at exec; wait until every copy runs under its own name.
    const deadline = Date.now() + 5_000;
    for (const [name, pid] of pids) {
      while (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== name) {
        if (Date.now() > deadline) throw new Error(`pid ${pid} never showed up as ${name}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  });

  afterAll(killAll);

  it('--format json attributes each fake process to its component with RSS and PSS', async () => {
    const result = await cli(['sample', '--format', 'json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const sample = JSON.parse(result.stdout) as {
      timestampMs: number;
      system: Record<string, unknown>;
      pressure: string;
      components: Record<string, { processCount: number; rssBytes: number; pssBytes: number | null }>;
      processes: { pid: number; name: string; component: string; rssBytes: number; pssBytes: number | null }[];
    };

    expect(typeof sample.timestampMs).toBe('number');
    expect(Math.abs(sample.timestampMs - Date.now())).toBeLessThan(60_000);
    for (const key of ['totalBytes', 'availableBytes', 'usedBytes', 'swapTotalBytes', 'swapUsedBytes'] as const) {
      expect(sample.system[key], `system.${key}`).toEqual(expect.any(Number));
      expect(sample.system[key] as number, `system.${key}`).toBeGreaterThanOrEqual(0);
    }
    expect(sample.system).toHaveProperty('psi');
    expect(sample.system.totalBytes as number).toBeGreaterThan(0);
    expect(['low', 'medium', 'high', 'critical']).toContain(sample.pressure);

    expect(sample.components.ollama?.processCount).toBeGreaterThanOrEqual(2);
    expect(sample.components.audio?.processCount).toBeGreaterThanOrEqual(1);

    for (const [name, component] of Object.entries(FAKES)) {
      const pid = pids.get(name)!;
      const proc = sample.processes.find((p) => p.pid === pid);
      expect(proc, `pid ${pid} (${name}) in processes`).toBeDefined();
      expect(proc!.name).toBe(name);
      expect(proc!.component).toBe(component);
      expect(proc!.rssBytes).toBeGreaterThan(0);
      // Watched components (everything but "other") get PSS by default (sampling.pss = watched).
      expect(proc!.pssBytes).toEqual(expect.any(Number));
    }
  });

  it('--format table names the components', async () => {
    const result = await cli(['sample', '--format', 'table']);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines.find((l) => /^component\s+processes\s+rss\s+pss$/.test(l))).toBeDefined();
    const ollamaRow = lines.find((l) => l.startsWith('ollama '));
    const audioRow = lines.find((l) => l.startsWith('audio '));
    expect(ollamaRow).toBeDefined();
    expect(audioRow).toBeDefined();
    expect(Number(ollamaRow!.trim().split(/\s+/)[1])).toBeGreaterThanOrEqual(2);
    expect(Number(audioRow!.trim().split(/\s+/)[1])).toBeGreaterThanOrEqual(1);
    expect(result.stdout).toMatch(/pressure (low|medium|high|critical)/);
  });
});

describe('memtide usage', () => {
  it('--help exits 0 and lists the commands', async () => {
    const result = await cli(['--help']);
    expect(result.code).toBe(0);
    for (const command of ['run', 'sample', 'history', 'export', 'config']) {
      expect(result.stdout).toMatch(new RegExp(`^  ${command}\\s`, 'm'));
    }
  });

  it('an unknown command exits 2 and says so', async () => {
    const result = await cli(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command "frobnicate"');
    expect(result.stdout).toBe('');
  });

  it('sample --format xml exits 2 naming --format', async () => {
    const result = await cli(['sample', '--format', 'xml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--format');
    expect(result.stderr).toContain('xml');
    expect(result.stdout).toBe('');
  });
});

describe('memtide config', () => {
  it('--print --set applies units', async () => {
    const result = await cli(['config', '--print', '--set', 'sampling.intervalMs=2s']);
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as { sampling: { intervalMs: number } }).sampling.intervalMs).toBe(2000);
  });

  it('--print with an unknown key in the file exits 2 naming the dotted path', async () => {
    const file = path.join(tmp, 'unknown-key.json');
    fs.writeFileSync(file, JSON.stringify({ sampling: { intervalMs: 500, intervalMz: 5 } }));
    const result = await cli(['config', '--print', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('sampling.intervalMz');
    expect(result.stderr).toContain(file);
    expect(result.stdout).toBe('');
  });

  it('--schema prints a JSON Schema with properties.sampling', async () => {
    const result = await cli(['config', '--schema']);
    expect(result.code).toBe(0);
    const schema = JSON.parse(result.stdout) as { type?: string; properties?: Record<string, { properties?: Record<string, unknown> }> };
    expect(schema.type).toBe('object');
    expect(schema.properties?.sampling).toBeTypeOf('object');
    expect(schema.properties?.sampling?.properties).toHaveProperty('intervalMs');
  });

  it('MEMTIDE_SAMPLING__INTERVAL_MS shows up in --print', async () => {
    const result = await cli(['config', '--print'], { env: { MEMTIDE_SAMPLING__INTERVAL_MS: '250' } });
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as { sampling: { intervalMs: number } }).sampling.intervalMs).toBe(250);
  });
});
