/**
 * Generates docs/configuration.md, the configuration reference, from the one
 * schema in src/app/configSchema.ts, and the profile table of
 * docs/optimization.md (between its markers) from
 * src/app/optimizationProfiles.ts: `npm run docs:config`. The test
 * test/configDocs.test.ts fails when a committed file differs from what this
 * renders, so neither can drift from the code.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEFAULT_COMPONENT_RULES, configSchema } from '../src/app/configSchema.js';
import { OBSERVE_ONLY_SETTINGS, PROFILE_NAMES, PROFILE_ROWS, type ProfileRow, type ProfileValue } from '../src/app/optimizationProfiles.js';
import { formatBytes, formatDuration, parseDuration } from '../src/app/units.js';

export const DOCS_PATH = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));
export const OPTIMIZATION_DOCS_PATH = fileURLToPath(new URL('../docs/optimization.md', import.meta.url));

/** The parts of a JSON Schema node this generator reads. */
interface Node {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  anyOf?: Node[];
  properties?: Record<string, Node>;
  required?: string[];
  items?: Node;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  pattern?: string;
}

const inputSchema = (): Node => z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Node;
/** The output side carries constraints applied after unit parsing (e.g. sampling.intervalMs >= 50). */
const outputSchema = (): Node => z.toJSONSchema(configSchema, { io: 'output', unrepresentable: 'any' }) as Node;

/** `sampling.intervalMs` → `MEMTIDE_SAMPLING__INTERVAL_MS`. */
export function envVarName(path: string): string {
  return `MEMTIDE_${path
    .split('.')
    .map((segment) => segment.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())
    .join('__')}`;
}

/** Every leaf of the schema (arrays count as leaves) with its default, if it has one. */
export function configLeaves(): { path: string; default?: unknown }[] {
  const leaves: { path: string; default?: unknown }[] = [];
  const walk = (node: Node, path: string): void => {
    if (node.properties) {
      for (const [key, child] of Object.entries(node.properties)) walk(child, path ? `${path}.${key}` : key);
      return;
    }
    leaves.push('default' in node ? { path, default: node.default } : { path });
  };
  walk(inputSchema(), '');
  return leaves;
}

const code = (text: string) => `\`${text}\``;
const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
const range = (node: Node) =>
  node.minimum !== undefined && node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER
    ? ` ${node.minimum}–${node.maximum}`
    : node.minimum !== undefined
      ? ` ≥ ${node.minimum}`
      : node.maximum !== undefined
        ? ` ≤ ${node.maximum}`
        : '';

const isUnitUnion = (node: Node) =>
  node.anyOf?.length === 2 && node.anyOf.some((n) => n.type === 'integer') && node.anyOf.some((n) => n.type === 'string');

/** Human type of a leaf. Durations and sizes are recognised by the key's suffix (`…Ms`, `…Bytes`). */
function typeOf(node: Node, path: string, output: Node | undefined): string {
  if (isUnitUnion(node)) {
    const floor = output?.minimum !== undefined && output.minimum > 0 ? `, ≥ ${output.minimum} ms` : '';
    if (path.endsWith('Ms')) return `duration (ms, or ${code('"5s"')}, ${code('"10m"')}, …${floor})`;
    if (path.endsWith('Bytes')) return `size (bytes, or ${code('"512MB"')}, ${code('"6GiB"')}, …)`;
    throw new Error(`${path}: an integer-or-string key must end in "Ms" (duration) or "Bytes" (size)`);
  }
  if (node.anyOf) return node.anyOf.map((n) => typeOf(n, path, undefined)).join(' or ');
  if (node.enum) return `one of ${node.enum.map((v) => code(String(v))).join(', ')}`;
  switch (node.type) {
    case 'null':
      return code('null');
    case 'boolean':
      return 'boolean';
    case 'integer':
    case 'number':
      return `${node.type}${range(node)}`;
    case 'string':
      if (node.pattern) return `string matching ${code(node.pattern)}`;
      return node.minLength ? 'non-empty string' : 'string';
    case 'array':
      return node.items?.properties ? 'array of rules (see below)' : 'array';
    case 'object':
      return 'object';
    default:
      throw new Error(`${path}: cannot document a schema node of type ${String(node.type)}`);
  }
}

function defaultOf(node: Node, path: string): string {
  if (!('default' in node)) return '—';
  const value = node.default;
  if (path === 'components.rules') return 'Meetily rules (see below)';
  if (isUnitUnion(node) && path.endsWith('Ms')) {
    const ms = typeof value === 'number' ? value : parseDuration(String(value));
    return `${code(JSON.stringify(value))} (${ms === null ? '?' : typeof value === 'number' ? formatDuration(ms) : `${ms} ms`})`;
  }
  return code(JSON.stringify(value));
}

interface Row {
  path: string;
  type: string;
  default: string;
  description: string;
}

/**
 * The rows of one section. Objects are flattened into dotted paths; sibling
 * objects with identical schemas (the threshold levels) share rows, written
 * `{medium,high,critical}`.
 */
function rowsOf(node: Node, path: string, output: Node | undefined, rows: Row[]): Row[] {
  if (!node.properties) {
    rows.push({ path, type: typeOf(node, path, output), default: defaultOf(node, path), description: node.description ?? '—' });
    return rows;
  }
  if (path.includes('.') && (node.description || 'default' in node)) {
    rows.push({ path, type: 'object', default: defaultOf(node, path), description: node.description ?? '—' });
  }
  const entries = Object.entries(node.properties);
  const done = new Set<string>();
  for (const [key, child] of entries) {
    if (done.has(key)) continue;
    const twins = child.properties ? entries.filter(([, other]) => JSON.stringify(other) === JSON.stringify(child)).map(([k]) => k) : [key];
    twins.forEach((k) => done.add(k));
    const segment = twins.length > 1 ? `{${twins.join(',')}}` : key;
    rowsOf(child, `${path}.${segment}`, output?.properties?.[key], rows);
  }
  return rows;
}

const table = (header: string[], rows: string[][]) =>
  [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');

/** A realistic file; validated against the schema while rendering, so it cannot go stale. */
export const EXAMPLE_CONFIG = {
  sampling: { intervalMs: '2s', pss: 'watched' },
  pressure: {
    preset: '8gb',
    marginPercent: 5,
    dwellMs: '1m',
    thresholds: { critical: { availablePercent: 4, swapUsedPercent: null } },
  },
  history: { path: '/var/lib/memtide/memtide.db', rawRetentionMs: '12h', aggregateRetentionMs: '90d' },
  server: { host: '127.0.0.1', port: 7071 },
  log: { level: 'info', format: 'json' },
};

/** Rules replace the defaults whole: this keeps them and adds two. */
export const EXAMPLE_RULES = {
  components: {
    rules: [
      ...DEFAULT_COMPONENT_RULES.slice(0, 2),
      { component: 'lmstudio', name: '(lms|LM Studio)', cmdline: '--server' },
      { component: 'vectordb', port: 6333 },
      ...DEFAULT_COMPONENT_RULES.slice(2),
    ],
  },
};

/** Env examples: path → value as written in the shell. */
const ENV_EXAMPLES: [string, string][] = [
  ['sampling.intervalMs', '500ms'],
  ['pressure.preset', '4gb'],
  ['pressure.thresholds.critical.availablePercent', '3'],
  ['history.enabled', 'false'],
  ['server.port', '8080'],
];

export function renderConfigDocs(): string {
  configSchema.parse(EXAMPLE_CONFIG);
  configSchema.parse(EXAMPLE_RULES);
  const input = inputSchema();
  const output = outputSchema();
  const sections = Object.entries(input.properties ?? {});
  const ruleItems = input.properties?.components?.properties?.rules?.items;
  if (!ruleItems?.properties) throw new Error('components.rules: expected an array of objects');

  const out: string[] = [];
  out.push(
    '<!-- Generated by `npm run docs:config` (scripts/gen-config-docs.ts) from src/app/configSchema.ts. Do not edit by hand: edit the schema and regenerate. -->',
    '',
    '# Configuration reference',
    '',
    'memtide reads one configuration, validated by one schema. Every key is optional; what is left out takes the default below. ' +
      'Every object is strict: an unknown or misspelt key is an error that names its full dotted path and where it came from ' +
      `(the file, the ${code('MEMTIDE_*')} variable or the flag), never a setting silently ignored.`,
    '',
    'The JSON Schema of the file, for editors and validators, is printed by `memtide config --schema`; ' +
      'the effective configuration by `memtide config --print`.',
    '',
    '## Precedence',
    '',
    'Later layers win:',
    '',
    '1. the defaults listed below;',
    `2. the optimization profile picked by ${code('optimization.level')} and ${code('optimization.lowMemory')} (docs/optimization.md; ${code('basic')}, the default, changes nothing);`,
    `3. options given in code to ${code('createMemtide()')} (when memtide is embedded);`,
    `4. the config file: ${code('--config FILE')} (${code('-c')}), else the file named by ${code('MEMTIDE_CONFIG')};`,
    `5. environment variables ${code('MEMTIDE_*')};`,
    `6. command-line flags: ${code('--set KEY=VALUE')} (repeatable, e.g. ${code('--set sampling.intervalMs=500ms')}) and named flags;`,
    `7. runtime changes through the API (${code('PATCH /api/config')}, the dashboard's actions), until memtide stops.`,
    '',
    'So a setting you write anywhere wins over the optimization level.',
    '',
    `Objects merge key by key across layers; scalars and arrays replace whole (a ${code('components.rules')} list replaces the default rules, it is not appended to them).`,
    '',
    '## Units',
    '',
    `- **Durations** are milliseconds as a number, or a string with a unit: ${['500ms', '5s', '10m', '24h', '30d', '1.5h'].map((t) => code(`"${t}"`)).join(', ')}. ` +
      'A string without a unit is milliseconds. Keys holding durations end in `Ms`.',
    `- **Sizes** are bytes as a number, or a string with a unit: decimal ${['kB', 'MB', 'GB', 'TB'].map(code).join(', ')} and binary ${['KiB', 'MiB', 'GiB', 'TiB'].map(code).join(', ')} ` +
      `(${code('K')}, ${code('M')}, ${code('G')} are binary), e.g. ${code('"512MB"')}, ${code('"1.5GiB"')}.`,
    '',
    '## Environment variables',
    '',
    `Every key can be set as ${code('MEMTIDE_SECTION__KEY')}: ${code('MEMTIDE_')}, then the path with ${code('__')} (two underscores) between levels. ` +
      `Within a level, case and single underscores are ignored, so ${code('MEMTIDE_SAMPLING__INTERVAL_MS')} and ${code('MEMTIDE_SAMPLING__INTERVALMS')} both set ${code('sampling.intervalMs')}. ` +
      `Values are parsed as JSON when they are JSON (numbers, ${code('true')}/${code('false')}, ${code('null')}, arrays, objects), else taken as strings. ` +
      `An unknown ${code('MEMTIDE_*')} variable is an error naming the variable. ${code('MEMTIDE_CONFIG')} (the file) and ${code('MEMTIDE_TOKEN')} are not configuration keys.`,
    '',
    '```sh',
    ...ENV_EXAMPLES.map(([path, value]) => `${envVarName(path)}=${value}`),
    `${envVarName('components.rules')}='[{"component":"ollama","name":"ollama"},{"component":"audio","name":"whisper-server"}]'`,
    '```',
    '',
    '## Example `memtide.json`',
    '',
    '```json',
    JSON.stringify(EXAMPLE_CONFIG, null, 2),
    '```',
    '',
  );

  for (const [section, node] of sections) {
    const rows = rowsOf(node, section, output.properties?.[section], []);
    out.push(`## \`${section}\``, '');
    if (node.description) out.push(node.description, '');
    out.push(
      rows.length
        ? table(['Key', 'Type', 'Default', 'Description'], rows.map((r) => [code(r.path), r.type, r.default, r.description]))
        : 'No settings yet.',
      '',
    );
    if (section === 'components') {
      const required = new Set(ruleItems.required ?? []);
      out.push(
        '### Rules',
        '',
        'Each process gets the component of the first rule it matches; a rule matches when all of its conditions hold, and needs at least one of ' +
          `${['name', 'cmdline', 'pidFile', 'port'].map(code).join(', ')}. A process no rule matches inherits the component of its nearest ancestor, else ${code('other')}; ` +
          `memtide's own process is ${code('components.engine')}.`,
        '',
        table(
          ['Field', 'Type', 'Required', 'Description'],
          Object.entries(ruleItems.properties).map(([key, field]) => [
            code(key),
            typeOf(field, `components.rules[].${key}`, undefined),
            required.has(key) ? 'yes' : 'no',
            field.description ?? '—',
          ]),
        ),
        '',
        'The default rules (Meetily, Ollama, whisper.cpp):',
        '',
        '```json',
        JSON.stringify(DEFAULT_COMPONENT_RULES, null, 2),
        '```',
        '',
        'Adding a rule means writing the whole list, e.g. keeping the defaults around two new rules:',
        '',
        '```json',
        JSON.stringify(EXAMPLE_RULES, null, 2),
        '```',
        '',
      );
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}

// ---------------------------------------------------------------------------------------
// docs/optimization.md: the profile table, between markers (the prose around it is written by hand)
// ---------------------------------------------------------------------------------------

export const PROFILE_TABLE_START = '<!-- profiles:start: generated by `npm run docs:config` from src/app/optimizationProfiles.ts, do not edit by hand -->';
export const PROFILE_TABLE_END = '<!-- profiles:end -->';

const MIB = 1024 ** 2;

/** A profile value as people write it: `1m`, `16 MiB`, `30 s`, `0.8×`. */
export function formatProfileValue(row: Pick<ProfileRow, 'unit'>, value: ProfileValue): string {
  if (value === null) return 'null (auto)';
  if (typeof value === 'boolean') return String(value);
  switch (row.unit) {
    case 'ms':
      return formatDuration(value);
    case 'bytes':
      return value % MIB === 0 ? `${value / MIB} MiB` : formatBytes(value);
    case 'seconds':
      return `${value} s`;
    case 'factor':
      return `${value}×`;
    default:
      return String(value);
  }
}

/** The generated region: a summary (changes from the looser profile in bold), then every value with its reason. */
export function renderProfileTable(): string {
  const summary = PROFILE_ROWS.map((row) => [
    code(row.path),
    ...PROFILE_NAMES.map((name, index) => {
      const text = code(formatProfileValue(row, row.profiles[name].value));
      const previous = index > 0 ? row.profiles[PROFILE_NAMES[index - 1]!].value : row.profiles[name].value;
      return previous === row.profiles[name].value ? text : `**${text}**`;
    }),
  ]);
  const reasons = PROFILE_ROWS.map((row) => [
    code(row.path),
    ...PROFILE_NAMES.map((name) => `${code(formatProfileValue(row, row.profiles[name].value))}: ${row.profiles[name].why}`),
  ]);
  const header = ['Setting', ...PROFILE_NAMES.map(code)];
  return [
    PROFILE_TABLE_START,
    '',
    table(header, summary),
    '',
    `Bold: tighter than the profile to its left. With ${code('optimization.observeOnly: true')}, whatever the profile, it also sets ` +
      OBSERVE_ONLY_SETTINGS.map((s) => `${code(`${s.path}: ${JSON.stringify(s.value)}`)}, ${s.why}`).join('; ') +
      '.',
    '',
    '#### Why each value',
    '',
    table(header, reasons),
    '',
    PROFILE_TABLE_END,
  ].join('\n');
}

/** `doc` with the region between the markers replaced by the current table; throws when the markers are missing or repeated. */
export function spliceProfileTable(doc: string): string {
  const start = doc.indexOf(PROFILE_TABLE_START);
  const end = doc.indexOf(PROFILE_TABLE_END);
  if (start < 0 || end < start || doc.indexOf(PROFILE_TABLE_START, start + 1) >= 0 || doc.indexOf(PROFILE_TABLE_END, end + 1) >= 0) {
    throw new Error(`${OPTIMIZATION_DOCS_PATH}: expected the markers ${PROFILE_TABLE_START} and ${PROFILE_TABLE_END} once each, in that order`);
  }
  return `${doc.slice(0, start)}${renderProfileTable()}${doc.slice(end + PROFILE_TABLE_END.length)}`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(DOCS_PATH, renderConfigDocs());
  process.stdout.write(`wrote ${DOCS_PATH}\n`);
  writeFileSync(OPTIMIZATION_DOCS_PATH, spliceProfileTable(readFileSync(OPTIMIZATION_DOCS_PATH, 'utf8')));
  process.stdout.write(`wrote the profile table of ${OPTIMIZATION_DOCS_PATH}\n`);
}
