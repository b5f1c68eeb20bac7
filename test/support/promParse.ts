/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests:
 * `# HELP` / `# TYPE` lines, samples with labels (escapes `\\`, `\"`, `\n`),
 * values including `+Inf`/`-Inf`/`NaN`, optional timestamps, and the rules a
 * scraper relies on: valid names, one HELP and one TYPE per family and before
 * its samples, a family's samples together, no duplicate series, histograms
 * with `_bucket{le}` cumulative buckets ending at `+Inf` = `_count`, and `_sum`.
 * Every error names the line.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface PromSample {
  /** The sample's own name (`x_bucket`, `x_sum`, ... for histograms). */
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export interface PromFamily {
  name: string;
  help: string | undefined;
  type: MetricType;
  samples: PromSample[];
}

export class PromParseError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'PromParseError';
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

function unescape(text: string, line: number, quotesAllowed: boolean): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = text[++i];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else if (next === '"' && quotesAllowed) out += '"';
    else throw new PromParseError(line, `bad escape "\\${next ?? ''}"`);
  }
  return out;
}

/**
 * Values are what Go's `strconv.ParseFloat` reads (the format's definition):
 * decimal floats, and NaN / Inf / Infinity in any case with an optional sign
 * (prom-client writes NaN as "Nan").
 */
function parseValue(text: string, line: number): number {
  if (/^nan$/i.test(text)) return Number.NaN;
  const inf = /^([+-]?)inf(inity)?$/i.exec(text);
  if (inf) return inf[1] === '-' ? -Infinity : Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new PromParseError(line, `not a number: "${text}"`);
  return Number(text);
}

/** `{a="x",b="y"}` starting at `start`; returns the labels and the index after `}`. */
function parseLabels(text: string, start: number, line: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    if (text[i] === '}') return { labels, end: i + 1 };
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new PromParseError(line, 'label without "="');
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new PromParseError(line, `bad label name "${name}"`);
    if (Object.hasOwn(labels, name)) throw new PromParseError(line, `label "${name}" twice`);
    if (text[eq + 1] !== '"') throw new PromParseError(line, `label "${name}" value is not quoted`);
    let j = eq + 2;
    let raw = '';
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new PromParseError(line, `unterminated value of label "${name}"`);
      if (c === '\\') {
        raw += c + (text[j + 1] ?? '');
        j += 2;
        continue;
      }
      if (c === '"') break;
      raw += c;
      j += 1;
    }
    labels[name] = unescape(raw, line, true);
    i = j + 1;
    if (text[i] === ',') i += 1;
    else if (text[i] !== '}') throw new PromParseError(line, `expected "," or "}" after label "${name}"`);
  }
}

/** The family a sample belongs to: histogram/summary samples carry a suffix. */
function familyOf(sampleName: string, families: Map<string, PromFamily>): PromFamily | undefined {
  const direct = families.get(sampleName);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const family = families.get(sampleName.slice(0, -suffix.length));
    if (family && (family.type === 'histogram' || (family.type === 'summary' && suffix !== '_bucket'))) return family;
  }
  return undefined;
}

const seriesKey = (name: string, labels: Record<string, string>) =>
  `${name}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',')}}`;

export function parsePrometheusText(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  const helps = new Map<string, string>();
  const closed = new Set<string>();
  const series = new Set<string>();
  let current: PromFamily | undefined;
  if (text.length > 0 && !text.endsWith('\n')) throw new PromParseError(text.split('\n').length, 'the exposition must end with a newline');
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const match = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(raw);
      if (!match) return; // a plain comment
      const [, keyword, name = '', rest = ''] = match;
      if (!METRIC_NAME.test(name)) throw new PromParseError(line, `bad metric name "${name}"`);
      if (closed.has(name)) throw new PromParseError(line, `${keyword} for "${name}" after its samples ended`);
      if (keyword === 'HELP') {
        if (helps.has(name)) throw new PromParseError(line, `second HELP for "${name}"`);
        helps.set(name, unescape(rest, line, false));
        const family = families.get(name);
        if (family) family.help = helps.get(name);
        return;
      }
      if (families.has(name)) throw new PromParseError(line, `second TYPE for "${name}"`);
      if (!(TYPES as readonly string[]).includes(rest.trim())) throw new PromParseError(line, `unknown type "${rest}"`);
      if (current && current.name !== name) closed.add(current.name);
      current = { name, help: helps.get(name), type: rest.trim() as MetricType, samples: [] };
      families.set(name, current);
      return;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw);
    if (!nameMatch) throw new PromParseError(line, `not a sample: "${raw}"`);
    const name = nameMatch[0];
    let rest = raw.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      const parsed = parseLabels(raw, name.length, line);
      labels = parsed.labels;
      rest = raw.slice(parsed.end);
    }
    const parts = rest.trim().split(/\s+/);
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) throw new PromParseError(line, `expected "value [timestamp]" after the name and labels`);
    const value = parseValue(parts[0] ?? '', line);
    const sample: PromSample = { name, labels, value };
    if (parts[1] !== undefined) {
      if (!/^-?\d+$/.test(parts[1])) throw new PromParseError(line, `bad timestamp "${parts[1]}"`);
      sample.timestampMs = Number(parts[1]);
    }
    let family = familyOf(name, families);
    if (!family) {
      // Untyped sample without a TYPE line: its own family.
      family = { name, help: helps.get(name), type: 'untyped', samples: [] };
      families.set(name, family);
    }
    if (closed.has(family.name)) throw new PromParseError(line, `sample of "${family.name}" after its family ended`);
    if (current && current !== family) closed.add(current.name);
    current = family;
    const key = seriesKey(name, labels);
    if (series.has(key)) throw new PromParseError(line, `duplicate series ${key}`);
    series.add(key);
    if (family.type === 'histogram' && name === `${family.name}_bucket` && labels.le === undefined) {
      throw new PromParseError(line, `histogram bucket without "le"`);
    }
    if (family.type === 'histogram' && name === family.name) throw new PromParseError(line, `histogram sample without _bucket/_sum/_count suffix`);
    family.samples.push(sample);
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

/** Buckets cumulative and sorted by `le`, a `+Inf` bucket equal to `_count`, a `_sum`, per label set. */
function checkHistogram(family: PromFamily): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = seriesKey('', rest);
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (sample.name.endsWith('_bucket')) group.buckets.push([le === '+Inf' ? Infinity : Number(le), sample.value]);
    else if (sample.name.endsWith('_count')) group.count = sample.value;
    else if (sample.name.endsWith('_sum')) group.sum = sample.value;
  }
  for (const [key, group] of groups) {
    const where = `histogram ${family.name}${key}`;
    if (group.count === undefined || group.sum === undefined) throw new PromParseError(0, `${where} lacks _count or _sum`);
    const last = group.buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new PromParseError(0, `${where} lacks the le="+Inf" bucket`);
    if (last[1] !== group.count) throw new PromParseError(0, `${where}: +Inf bucket ${last[1]} != _count ${group.count}`);
    for (let i = 1; i < group.buckets.length; i++) {
      const [le, value] = group.buckets[i]!;
      const [prevLe, prevValue] = group.buckets[i - 1]!;
      if (!(le > prevLe)) throw new PromParseError(0, `${where}: buckets not in increasing le order`);
      if (value < prevValue) throw new PromParseError(0, `${where}: buckets not cumulative`);
    }
  }
}
