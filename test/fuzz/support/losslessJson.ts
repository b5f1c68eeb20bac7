/**
 * A JSON reader for comparing bodies exactly: numbers are kept as their
 * exact decimal value (normalised text), not as doubles, so
 * `12345678901234567890` and `12345678901234567000` differ and `1e400` is
 * not Infinity. Duplicate keys: the last wins (as JSON.parse and Go's
 * encoding/json). Keys such as `__proto__` stay plain keys. Throws on
 * anything that is not JSON.
 */

export type Lossless = null | boolean | string | { $number: string } | Lossless[] | { [key: string]: Lossless };

/** `-12.50e+3` → `-1.25e4`; every spelling of one value gives one text. */
export function normaliseNumber(text: string): string {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) throw new Error(`not a JSON number: ${text}`);
  const [, sign, whole = '', fraction = '', exponent = '0'] = match;
  const all = `${whole}${fraction}`;
  const leading = all.length - all.replace(/^0+/, '').length;
  const digits = all.slice(leading).replace(/0+$/, '');
  if (digits === '') return '0';
  const power = BigInt(exponent) + BigInt(whole.length - 1 - leading);
  return `${sign}${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ''}e${power}`;
}

export function parseLossless(text: string): Lossless {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at ${i}`);
  };
  const ws = () => {
    while (/[ \t\n\r]/.test(text[i] ?? '')) i += 1;
  };
  const value = (): Lossless => {
    ws();
    const c = text[i];
    if (c === '{') {
      i += 1;
      const out: { [key: string]: Lossless } = {};
      ws();
      if (text[i] === '}') {
        i += 1;
        return out;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const key = string();
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i += 1;
        Object.defineProperty(out, key, { value: value(), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') {
          i += 1;
          continue;
        }
        if (text[i] === '}') {
          i += 1;
          return out;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i += 1;
      const out: Lossless[] = [];
      ws();
      if (text[i] === ']') {
        i += 1;
        return out;
      }
      for (;;) {
        out.push(value());
        ws();
        if (text[i] === ',') {
          i += 1;
          continue;
        }
        if (text[i] === ']') {
          i += 1;
          return out;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    const literal = /^(true|false|null)/.exec(text.slice(i, i + 5));
    if (literal) {
      i += literal[1]!.length;
      return literal[1] === 'null' ? null : literal[1] === 'true';
    }
    const number = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 1000));
    if (!number) return fail('expected a value');
    i += number[0].length;
    return { $number: normaliseNumber(number[0]) };
  };
  const string = (): string => {
    const start = i;
    i += 1;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (text[i] !== '"') fail('unterminated string');
    i += 1;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const result = value();
  ws();
  if (i !== text.length) fail('trailing text');
  return result;
}
