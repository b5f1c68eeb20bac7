/**
 * Ollama's `keep_alive` semantics, as `api.Duration.UnmarshalJSON` in
 * ollama/ollama `api/types.go` implements them: a JSON number is seconds, a
 * string is a Go duration (`time.ParseDuration`, so "10" without a unit is an
 * error), a negative value means "forever", 0 means "unload when done", null
 * means "not set". Any other JSON type is refused. The error texts are Go's
 * and Ollama's own, so a client sees the same message through the proxy as
 * from Ollama itself.
 */

/** Keep-alive in milliseconds; `Infinity` = forever (a negative value). */
export type KeepAliveMs = number;

export type KeepAliveParse = { ok: true; ms: KeepAliveMs } | { ok: false; error: string };

const NS_PER_UNIT: Record<string, number> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3, // U+00B5 micro sign
  'μs': 1e3, // U+03BC Greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go's `quote` for duration errors: double quotes, with `"` and `\` escaped. */
const quote = (text: string) => `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/**
 * `time.ParseDuration`: "300ms", "-1.5h", "2h45m", "0". Returns nanoseconds,
 * or Go's error text (`time: missing unit in duration "10"`).
 */
export function parseGoDuration(text: string): { ok: true; ns: number } | { ok: false; error: string } {
  const invalid = { ok: false as const, error: `time: invalid duration ${quote(text)}` };
  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return { ok: true, ns: 0 };
  if (rest === '') return invalid;
  let total = 0;
  while (rest !== '') {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = number?.[1] ?? '';
    const fraction = number?.[2];
    if (!number || (whole === '' && !fraction)) return invalid;
    rest = rest.slice(number[0].length);
    const unitMatch = /^[^\d.]+/.exec(rest);
    if (!unitMatch) return { ok: false, error: `time: missing unit in duration ${quote(text)}` };
    const unit = unitMatch[0];
    const scale = NS_PER_UNIT[unit];
    if (scale === undefined) return { ok: false, error: `time: unknown unit ${quote(unit)} in duration ${quote(text)}` };
    rest = rest.slice(unit.length);
    total += Number(`${whole || '0'}.${fraction ?? '0'}`) * scale;
    // Go keeps durations in an int64 of nanoseconds.
    if (total > 9_223_372_036_854_775_807) return invalid;
  }
  return { ok: true, ns: negative ? -total : total };
}

/** Go's `%T` for a value decoded into `any`, for the "unsupported duration type" error. */
function goTypeName(value: unknown): string {
  if (typeof value === 'boolean') return 'bool';
  if (Array.isArray(value)) return '[]interface {}';
  if (typeof value === 'object' && value !== null) return 'map[string]interface {}';
  return typeof value;
}

/**
 * Parses a `keep_alive` value the way Ollama does. `undefined`/`null` are not
 * handled here (they mean "not set"); callers check for them first.
 */
export function parseKeepAlive(value: unknown): KeepAliveParse {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return { ok: false, error: `unsupported duration type: '${goTypeName(value)}'` };
    return { ok: true, ms: value < 0 ? Infinity : value * 1000 };
  }
  if (typeof value === 'string') {
    const parsed = parseGoDuration(value);
    if (!parsed.ok) return parsed;
    return { ok: true, ms: parsed.ns < 0 ? Infinity : parsed.ns / 1e6 };
  }
  return { ok: false, error: `unsupported duration type: '${goTypeName(value)}'` };
}
