#!/usr/bin/env node
/**
 * The `memtide` command. Exit codes: 0 done, 1 failed while running,
 * 2 bad usage or bad configuration (the message names the flag or the key).
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from './config.js';
import { UsageError } from './cliArgs.js';
import { analyzeCommand, analyzeHelp } from './commands/analyze.js';
import { configCommand, configHelp } from './commands/config.js';
import { modelsCommand, modelsHelp } from './commands/models.js';
import { proxyCommand, proxyHelp } from './commands/proxy.js';
import { reportCommand, reportHelp } from './commands/report.js';
import { transcribeCommand, transcribeHelp } from './commands/transcribe.js';
import { exportCommand, exportHelp, historyCommand, historyHelp } from './commands/history.js';
import { runCommand, runHelp } from './commands/run.js';
import { sampleCommand, sampleHelp } from './commands/sample.js';

type Command = (args: string[], out: (text: string) => void) => Promise<number>;

const COMMANDS: Record<string, { run: Command; help: string; summary: string }> = {
  run: { run: runCommand, help: runHelp, summary: 'the daemon: sample, classify, keep history, serve the dashboard' },
  sample: { run: sampleCommand, help: sampleHelp, summary: 'one sample of system memory and components' },
  history: { run: historyCommand, help: historyHelp, summary: 'stored history (json or csv)' },
  export: { run: exportCommand, help: exportHelp, summary: 'history as a trace CSV file' },
  proxy: { run: proxyCommand, help: proxyHelp, summary: 'Ollama-compatible proxy with the model governor (point Meetily at it)' },
  models: { run: modelsCommand, help: modelsHelp, summary: 'list, unload, pin or unpin Ollama models of a running memtide' },
  transcribe: { run: transcribeCommand, help: transcribeHelp, summary: 'transcribe audio files in bounded chunks (JSON lines)' },
  analyze: { run: analyzeCommand, help: analyzeHelp, summary: 'replay a trace CSV: leaks, pressure, alerts' },
  report: { run: reportCommand, help: reportHelp, summary: 'memory report from history: trends, pressure, leak suspects, alerts, actions, suggestions (md, html, json)' },
  config: { run: configCommand, help: configHelp, summary: 'print the effective config or its JSON Schema' },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `memtide ${version()} — a reactive memory governor for local AI apps (Meetily, Ollama, whisper)

Usage: memtide <command> [options]

Commands:
${lines.join('\n')}

memtide <command> --help shows a command's options.
Config: defaults < --config FILE (or MEMTIDE_CONFIG) < MEMTIDE_* env < flags.
`;
}

export async function main(argv: string[], out: (text: string) => void = (t) => void process.stdout.write(t)): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? args[0] : undefined;
    out(topic && COMMANDS[topic] ? `${COMMANDS[topic].help}\n` : usage());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    out(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`memtide: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(args, out);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`memtide ${name}: ${error.message}\n`);
      return 2;
    }
    const code = (error as { code?: string }).code;
    process.stderr.write(`memtide ${name}: ${(error as Error).message ?? String(error)}${code ? ` [${code}]` : ''}\n`);
    return 1;
  }
}

// `memtide history | head` closes the pipe early: that is the reader saying "enough", not a failure.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`memtide: ${String(error)}\n`);
    process.exitCode = 1;
  },
);
