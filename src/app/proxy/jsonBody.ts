/**
 * JSON request bodies of the proxy: parsed with `JSON.parse` (fast path), and
 * when that fails, scanned once more byte by byte to say exactly where: V8's
 * messages give a character position only sometimes, and never a byte offset.
 */

export interface JsonSyntaxProblem {
  /** Byte offset of the first byte that cannot be there. */
  offset: number;
  reason: string;
}

const isWhitespace = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const isDigit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39;
const isHex = (c: number | undefined) => c !== undefined && (isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
const ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

/** Where the JSON text in `bytes` first goes wrong (RFC 8259), or null when it is valid. Iterative: no stack overflow on deep nesting. */
export function jsonSyntaxProblem(bytes: Uint8Array): JsonSyntaxProblem | null {
  const n = bytes.length;
  let i = 0;
  const stack: number[] = []; // 0x7b '{' or 0x5b '['
  const problem = (reason: string): JsonSyntaxProblem => ({ offset: i, reason: i >= n ? 'unexpected end of input' : reason });
  const skip = () => {
    while (isWhitespace(bytes[i])) i += 1;
  };
  const char = (c: number | undefined) => (c === undefined ? 'end of input' : c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`);

  const string = (): JsonSyntaxProblem | null => {
    i += 1; // opening quote
    while (i < n) {
      const c = bytes[i] as number;
      if (c === 0x22) {
        i += 1;
        return null;
      }
      if (c === 0x5c) {
        const e = bytes[i + 1];
        if (e === 0x75) {
          for (let k = 2; k < 6; k += 1) {
            if (!isHex(bytes[i + k])) {
              i += k;
              return problem('invalid \\u escape in string');
            }
          }
          i += 6;
          continue;
        }
        if (e === undefined || !ESCAPES.has(e)) {
          i += 1;
          return problem(`invalid escape ${char(e)} in string`);
        }
        i += 2;
        continue;
      }
      if (c < 0x20) return problem('control character in string (escape it)');
      i += 1;
    }
    return problem('unterminated string');
  };

  const number = (): JsonSyntaxProblem | null => {
    if (bytes[i] === 0x2d) i += 1;
    if (bytes[i] === 0x30) i += 1;
    else if (isDigit(bytes[i])) while (isDigit(bytes[i])) i += 1;
    else return problem(`expected a digit, got ${char(bytes[i])}`);
    if (bytes[i] === 0x2e) {
      i += 1;
      if (!isDigit(bytes[i])) return problem(`expected a digit after '.', got ${char(bytes[i])}`);
      while (isDigit(bytes[i])) i += 1;
    }
    if (bytes[i] === 0x65 || bytes[i] === 0x45) {
      i += 1;
      if (bytes[i] === 0x2b || bytes[i] === 0x2d) i += 1;
      if (!isDigit(bytes[i])) return problem(`expected a digit in the exponent, got ${char(bytes[i])}`);
      while (isDigit(bytes[i])) i += 1;
    }
    return null;
  };

  const literal = (word: string): JsonSyntaxProblem | null => {
    for (let k = 0; k < word.length; k += 1) {
      if (bytes[i] !== word.charCodeAt(k)) return problem(`unexpected ${char(bytes[i])} (expected "${word}")`);
      i += 1;
    }
    return null;
  };

  /** After '{' or ',' in an object: a key string and a colon. */
  const key = (): JsonSyntaxProblem | null => {
    skip();
    if (bytes[i] !== 0x22) return problem(`expected a property name in double quotes, got ${char(bytes[i])}`);
    const bad = string();
    if (bad) return bad;
    skip();
    if (bytes[i] !== 0x3a) return problem(`expected ':' after the property name, got ${char(bytes[i])}`);
    i += 1;
    return null;
  };

  let expectValue = true;
  for (;;) {
    if (expectValue) {
      skip();
      const c = bytes[i];
      let bad: JsonSyntaxProblem | null = null;
      if (c === 0x7b || c === 0x5b) {
        i += 1;
        skip();
        if (bytes[i] === (c === 0x7b ? 0x7d : 0x5d)) {
          i += 1;
          expectValue = false;
          continue;
        }
        stack.push(c);
        if (c === 0x7b) bad = key();
        if (bad) return bad;
        continue; // a value follows
      }
      if (c === 0x22) bad = string();
      else if (c === 0x2d || isDigit(c)) bad = number();
      else if (c === 0x74) bad = literal('true');
      else if (c === 0x66) bad = literal('false');
      else if (c === 0x6e) bad = literal('null');
      else return problem(`unexpected ${char(c)} where a value should start`);
      if (bad) return bad;
      expectValue = false;
      continue;
    }
    skip();
    const top = stack[stack.length - 1];
    if (top === undefined) return i < n ? problem(`unexpected ${char(bytes[i])} after the end of the JSON value`) : null;
    const c = bytes[i];
    if (c === 0x2c) {
      i += 1;
      if (top === 0x7b) {
        const bad = key();
        if (bad) return bad;
      }
      expectValue = true;
      continue;
    }
    if ((top === 0x7b && c === 0x7d) || (top === 0x5b && c === 0x5d)) {
      stack.pop();
      i += 1;
      continue;
    }
    return problem(`expected ',' or '${top === 0x7b ? '}' : ']'}', got ${char(c)}`);
  }
}

export type ParsedBody = { ok: true; value: unknown } | { ok: false; offset: number; reason: string };

/** Parses a JSON body; on failure says at which byte and why. */
export function parseJsonBody(bytes: Buffer): ParsedBody {
  try {
    return { ok: true, value: JSON.parse(bytes.toString('utf8')) as unknown };
  } catch (error) {
    const found = jsonSyntaxProblem(bytes);
    // The scanner accepts everything JSON.parse accepts; if it finds nothing, trust V8's message.
    return found ? { ok: false, offset: found.offset, reason: found.reason } : { ok: false, offset: 0, reason: (error as Error).message };
  }
}
