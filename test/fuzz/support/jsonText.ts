/**
 * JSON texts written by hand, so they can hold what JSON.stringify never
 * writes: numbers JavaScript cannot hold, escapes, whitespace anywhere JSON
 * allows it. For the proxy's lossless body handling and its JSON splicer.
 */
import fc from 'fast-check';

/** Ordinary numbers, and spellings and values JSON.stringify never writes (past a double, past 2^53, -0, long fractions). */
export const numberText = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.constantFrom('1e400', '-1e400', '12345678901234567890', '9007199254740993', '-0', '1.0', '1E2', '0.1000000000000000055511151231257827', '5e-324', '1e-400'),
);

/**
 * Any JSON value as text (duplicate keys allowed), its strings from
 * `stringText`, with `ws` wherever JSON allows whitespace inside arrays and
 * objects (none by default).
 */
export function valueTextOf(stringText: fc.Arbitrary<string>, ws: fc.Arbitrary<string> = fc.constant('')): fc.Arbitrary<string> {
  return fc.letrec<{ value: string }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      numberText,
      stringText,
      fc.constantFrom('true', 'false', 'null'),
      fc.tuple(fc.array(fc.tuple(ws, tie('value'), ws), { maxLength: 3 }), ws).map(([items, inner]) => `[${items.length ? items.map((p) => p.join('')).join(',') : inner}]`),
      fc.array(fc.tuple(stringText, ws, tie('value')), { maxLength: 3 }).map((entries) => `{${entries.map(([k, w, v]) => `${k}${w}:${w}${v}`).join(',')}}`),
    ),
  })).value;
}
