import { readFileSync } from 'node:fs';
import type { LoadedModel } from '../../model.js';
import { CONFIG_FLAGS, oneOf, parse, UsageError } from '../cliArgs.js';
import { loadConfig } from '../config.js';
import { formatBytes, formatDuration } from '../units.js';

export const modelsHelp = `memtide models [list | unload NAME | pin NAME | unpin NAME]
               [--url http://127.0.0.1:7071] [--token-file memtide.token]
               [--format table|json] [--config FILE] [--set KEY=VALUE]...

Talks to a running \`memtide run\` (its control API): list the Ollama models
the governor sees (size, context, requests in flight, idle time, pin), unload
one now (after its requests in flight end), or pin / unpin one (a pin made
here lasts until the runner stops; models.pinned in the config is permanent).
--url and --token-file default to server.host/port and server.tokenFile of the
config. Exit 1 when the runner refuses or cannot be reached.`;

const ACTIONS = ['list', 'unload', 'pin', 'unpin'] as const;

export class ModelsCommandError extends Error {
  readonly code = 'MEMTIDE_ERR_MODELS';
  constructor(message: string) {
    super(message);
    this.name = 'ModelsCommandError';
  }
}

function readToken(path: string, required: boolean): string | null {
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (token) return token;
  } catch (error) {
    if (required) throw new ModelsCommandError(`cannot read the token file ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)}): state-changing calls need the runner's token (--token-file)`);
    return null;
  }
  if (required) throw new ModelsCommandError(`the token file ${path} is empty`);
  return null;
}

function table(models: LoadedModel[], extras: { budgetBytes?: number; queued?: number }): string {
  const now = Date.now();
  const rows = models.map((m) => [
    m.name,
    formatBytes(m.sizeBytes),
    m.contextLength === null ? '-' : String(m.contextLength),
    String(m.inFlight),
    m.idleSinceMs === null ? 'busy' : formatDuration(now - m.idleSinceMs),
    m.pinned ? 'yes' : '',
  ]);
  const header = ['MODEL', 'SIZE', 'CTX', 'IN FLIGHT', 'IDLE', 'PINNED'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const total = models.reduce((sum, m) => sum + m.sizeBytes, 0);
  const summary = [
    `${models.length} loaded, ${formatBytes(total)}`,
    extras.budgetBytes !== undefined ? `budget ${formatBytes(extras.budgetBytes)}` : null,
    extras.queued !== undefined ? `${extras.queued} waiting` : null,
  ]
    .filter(Boolean)
    .join(', ');
  return `${[line(header), ...rows.map(line)].join('\n')}\n${summary}\n`;
}

export async function modelsCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parse(args, {
    ...CONFIG_FLAGS,
    url: { type: 'string' },
    'token-file': { type: 'string' },
    format: { type: 'string', short: 'f' },
  });
  if (values.help) {
    out(`${modelsHelp}\n`);
    return 0;
  }
  const action = oneOf('action', positionals[0], ACTIONS, 'list');
  const name = positionals[1];
  if (action !== 'list' && !name) throw new UsageError(`memtide models ${action} needs a model name, e.g. memtide models ${action} llama3.1:8b`);
  if (positionals.length > (action === 'list' ? 1 : 2)) throw new UsageError(`unexpected argument "${positionals.at(-1)}"`);
  const format = oneOf('format', values.format, ['table', 'json'] as const, 'table');

  let url = values.url;
  let tokenFile = values['token-file'];
  if (url === undefined || tokenFile === undefined) {
    const server = loadConfig({ file: values.config, set: values.set ?? [] }).server;
    const host = server.host.includes(':') ? `[${server.host}]` : server.host;
    url ??= `http://${host}:${server.port}`;
    tokenFile ??= server.tokenFile;
  }
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new UsageError(`--url: not a URL: "${url}"`);
  }

  const token = readToken(tokenFile, action !== 'list');
  const path = action === 'list' ? '/api/models' : `/api/models/${encodeURIComponent(name ?? '')}/${action}`;
  let response: Response;
  try {
    response = await fetch(new URL(path, base), {
      method: action === 'list' ? 'GET' : 'POST',
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new ModelsCommandError(`cannot reach memtide at ${base.origin} (${cause?.code ?? cause?.message ?? (error as Error).message}): is \`memtide run\` running?`);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  if (!response.ok) {
    const message = typeof body === 'object' && body !== null && 'error' in body ? String((body as { error: unknown }).error) : text.slice(0, 300);
    const retry = response.headers.get('retry-after');
    throw new ModelsCommandError(`${response.status}: ${message}${retry ? ` (retry after ${retry} s)` : ''}`);
  }
  if (format === 'json') {
    out(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  if (action === 'list') {
    const listing = body as { models: LoadedModel[]; budgetBytes?: number; queued?: number };
    out(table(listing.models, listing));
    return 0;
  }
  out(action === 'unload' ? `${name} unloaded\n` : action === 'pin' ? `${name} pinned\n` : `${name} unpinned\n`);
  return 0;
}
