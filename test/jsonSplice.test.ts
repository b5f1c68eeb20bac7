/**
 * The lossless JSON splicer (src/app/proxy/jsonSplice.ts): random objects
 * written with random whitespace, key order, escaped key spellings and
 * values JavaScript cannot hold, random changes (set, merge into an object,
 * into null, into something else, absent keys). The result must parse, equal
 * the input with exactly the intended members changed (compared with exact
 * numbers), and keep every other byte: the expected text is built from the
 * generator's own pieces, not by scanning.
 */
import { isDeepStrictEqual } from 'node:util';
import { fc, it as propIt } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { JsonSpliceError, objectMembers, spliceJson, type JsonChange, type JsonChanges } from '../src/app/proxy/jsonSplice.js';
import { valueTextOf } from './fuzz/support/jsonText.js';
import { parseLossless, type Lossless } from './fuzz/support/losslessJson.js';

// ---------------------------------------------------------------------------------------
// Objects as pieces of text
// ---------------------------------------------------------------------------------------

interface Member {
  key: string;
  /** How the key is written: plain, or with \u escapes. */
  keyText: string;
  /** Whitespace before the key, after it, after the colon, after the value. */
  ws: [string, string, string, string];
  value: Value;
}
type Value = { text: string } | { object: ObjectText };
interface ObjectText {
  /** Whitespace inside an empty object. */
  inner: string;
  members: Member[];
}

const render = (o: ObjectText): string => `{${o.members.length ? o.members.map(renderMember).join(',') : o.inner}}`;
const renderValue = (v: Value): string => ('text' in v ? v.text : render(v.object));
const renderMember = (m: Member): string => `${m.ws[0]}${m.keyText}${m.ws[1]}:${m.ws[2]}${renderValue(m.value)}${m.ws[3]}`;

const ws = fc.string({ unit: fc.constantFrom(' ', '\t', '\n', '\r'), maxLength: 3 });

/** Hostile strings: braces, quotes, backslashes in them. */
const stringText = fc.oneof(
  fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)),
  fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', '\\', ',', ':', ' ', 'a', 'é', '🎙', '\n'), maxLength: 8 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"\\ud800"', '"\\u0000"', '"\\/"', '"a\\"b"', '"\\\\"', '"}\\""'),
);
/** Any JSON value as text, with whitespace inside (duplicate keys allowed: untouched values must survive anyway). */
const valueText = valueTextOf(stringText, ws);

/** Keys the proxy edits, near-misses, and random ones ("$number" is the lossless reader's marker: not a key here). */
const keyArb = fc.oneof(
  fc.constantFrom('model', 'options', 'keep_alive', 'num_ctx', 'use_mmap', 'Model', 'model ', '__proto__', 'constructor', '', 'é', '🎙'),
  fc.string({ maxLength: 6 }).filter((k) => k !== '$number'),
);
const keyTextOf = (key: string, escaped: boolean): string =>
  escaped ? `"${key.split('').map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(key);

const membersOf = (value: fc.Arbitrary<Value>): fc.Arbitrary<Member[]> =>
  fc.uniqueArray(
    fc.record({ key: keyArb, escaped: fc.boolean(), ws: fc.tuple(ws, ws, ws, ws), value }).map(({ key, escaped, ...rest }) => ({ key, keyText: keyTextOf(key, escaped), ...rest })),
    { selector: (m) => m.key, maxLength: 6 },
  );

/** A duplicate-free object whose object members are duplicate-free and written as pieces too (a merge edits them). */
const objectArb: fc.Arbitrary<ObjectText> = fc.record({
  inner: ws,
  members: membersOf(
    fc.oneof(
      { weight: 3, arbitrary: valueText.filter((text) => !text.startsWith('{')).map((text) => ({ text })) },
      { weight: 1, arbitrary: fc.record({ inner: ws, members: membersOf(valueText.map((text) => ({ text }))) }).map((object) => ({ object })) },
    ),
  ),
});

// ---------------------------------------------------------------------------------------
// Changes, and what they must do
// ---------------------------------------------------------------------------------------

const setArb: fc.Arbitrary<JsonChange> = fc.jsonValue({ maxDepth: 2 }).map((set) => ({ set }));
const changesOf = (keys: fc.Arbitrary<string>, change: fc.Arbitrary<JsonChange>): fc.Arbitrary<JsonChanges> =>
  fc.uniqueArray(fc.tuple(keys, change), { selector: ([k]) => k, maxLength: 4 }).map((entries) => Object.fromEntries(entries));
const changeArb: fc.Arbitrary<JsonChange> = fc.oneof(setArb, changesOf(keyArb, setArb).map((merge) => ({ merge })));
/** Changes to keys the object has (mostly) and to keys it lacks. */
const changesFor = (o: ObjectText): fc.Arbitrary<JsonChanges> =>
  changesOf(o.members.length ? fc.oneof(fc.constantFrom(...o.members.map((m) => m.key)), keyArb) : keyArb, changeArb);

const change = (changes: JsonChanges, key: string): JsonChange | undefined => (Object.hasOwn(changes, key) ? changes[key] : undefined);

function materialise(c: JsonChange): unknown {
  return 'set' in c ? c.set : Object.fromEntries(Object.entries(c.merge).map(([k, inner]) => [k, materialise(inner)]));
}

/** The spec, on the generator's pieces: changed values replaced, missing members appended after the last value. */
function expectedText(o: ObjectText, changes: JsonChanges): string {
  const keys = new Set(o.members.map((m) => m.key));
  const appended = Object.entries(changes)
    .filter(([key]) => !keys.has(key))
    .map(([key, c]) => `${JSON.stringify(key)}:${JSON.stringify(materialise(c))}`);
  if (o.members.length === 0) return `{${appended.join(',')}${o.inner}}`;
  const members = o.members.map((m, index) => {
    const c = change(changes, m.key);
    let value = renderValue(m.value);
    if (c && 'set' in c) value = JSON.stringify(c.set);
    else if (c && 'object' in m.value) value = expectedText(m.value.object, c.merge);
    else if (c && value === 'null') value = JSON.stringify(materialise(c));
    const last = index === o.members.length - 1;
    return `${m.ws[0]}${m.keyText}${m.ws[1]}:${m.ws[2]}${value}${last && appended.length ? `,${appended.join(',')}` : ''}${m.ws[3]}`;
  });
  return `{${members.join(',')}}`;
}

const isObject = (v: Lossless): v is { [key: string]: Lossless } => typeof v === 'object' && v !== null && !Array.isArray(v) && !('$number' in v);
const lossless = (value: unknown): Lossless => parseLossless(JSON.stringify(value));
const define = (o: { [key: string]: Lossless }, key: string, value: Lossless) => Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });

/** The spec, on values: the input with the changes applied, numbers exact. */
function expectedValue(value: { [key: string]: Lossless }, changes: JsonChanges): Lossless {
  const out: { [key: string]: Lossless } = {};
  for (const [key, inner] of Object.entries(value)) define(out, key, inner);
  for (const [key, c] of Object.entries(changes)) {
    const existing = Object.hasOwn(out, key) ? out[key] : undefined;
    if ('set' in c || existing === undefined || existing === null) define(out, key, lossless(materialise(c)));
    else if (isObject(existing)) define(out, key, expectedValue(existing, c.merge));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

const caseArb = fc.tuple(ws, objectArb, ws).chain(([lead, object, trail]) => changesFor(object).map((changes) => ({ text: `${lead}${render(object)}${trail}`, lead, object, trail, changes })));

describe('spliceJson: properties', () => {
  propIt.prop([caseArb], { numRuns: 300 })('the result parses and equals the input with exactly the intended members changed (exact numbers)', ({ text, changes }) => {
    const out = spliceJson(Buffer.from(text), changes).toString('utf8');
    expect(() => JSON.parse(out)).not.toThrow();
    const before = parseLossless(text);
    if (!isObject(before)) throw new Error('the generator makes objects');
    const after = parseLossless(out);
    expect(isDeepStrictEqual(after, expectedValue(before, changes)), `${text}\n-> ${out}`).toBe(true);
  });

  propIt.prop([caseArb], { numRuns: 300 })('every byte outside the changed values is the input\'s', ({ text, lead, object, trail, changes }) => {
    expect(spliceJson(Buffer.from(text), changes).toString('utf8')).toBe(`${lead}${expectedText(object, changes)}${trail}`);
  });

  propIt.prop([caseArb])('no changes: the same bytes', ({ text }) => {
    expect(spliceJson(Buffer.from(text), {}).equals(Buffer.from(text))).toBe(true);
  });

  propIt.prop([objectArb])('finds every member: decoded keys, in order, each value span parsing to the member\'s value', (object) => {
    const bytes = Buffer.from(render(object));
    const { members, close } = objectMembers(bytes, 0);
    expect(close).toBe(bytes.length - 1);
    expect(members.map((m) => m.key)).toEqual(object.members.map((m) => m.key));
    members.forEach((m, i) => expect(bytes.subarray(m.valueStart, m.valueEnd).toString('utf8')).toBe(renderValue(object.members[i]!.value)));
  });
});

describe('spliceJson: cases', () => {
  const splice = (text: string, changes: JsonChanges) => spliceJson(Buffer.from(text), changes).toString('utf8');

  it('replaces values in place and appends missing members after the last value', () => {
    expect(splice('{ "model" : "a" ,\n  "options": {"seed": 1e400} \n}', { model: { set: 'b' }, keep_alive: { set: '5m' }, options: { merge: { num_ctx: { set: 2048 } } } })).toBe(
      '{ "model" : "b" ,\n  "options": {"seed": 1e400,"num_ctx":2048},"keep_alive":"5m" \n}',
    );
    expect(splice('{}', { model: { set: 'x' } })).toBe('{"model":"x"}');
    expect(splice(' { \n} ', { a: { set: 1 }, b: { set: [true] } })).toBe(' {"a":1,"b":[true] \n} ');
  });

  it('merges into null as a new object, leaves other non-objects to Ollama', () => {
    expect(splice('{"options":null}', { options: { merge: { num_ctx: { set: 2048 }, use_mmap: { set: false } } } })).toBe('{"options":{"num_ctx":2048,"use_mmap":false}}');
    expect(splice('{"options":[1]}', { options: { merge: { num_ctx: { set: 2048 } } } })).toBe('{"options":[1]}');
    expect(splice('{"options":"fast"}', { options: { merge: { num_ctx: { set: 2048 } } } })).toBe('{"options":"fast"}');
  });

  it('reads escaped keys, and sets every occurrence of a duplicated one', () => {
    expect(splice('{"mo\\u0064el":"a","x":"{\\"model\\":1}"}', { model: { set: 'b' } })).toBe('{"mo\\u0064el":"b","x":"{\\"model\\":1}"}');
    expect(splice('{"model":"a","model":"b"}', { model: { set: 'c' } })).toBe('{"model":"c","model":"c"}');
    expect(splice('{"__proto__":1}', Object.fromEntries([['__proto__', { set: 2 }]]) as JsonChanges)).toBe('{"__proto__":2}');
  });

  it('keeps bytes that are not valid UTF-8 as they were', () => {
    const bytes = Buffer.concat([Buffer.from('{"prompt":"'), Buffer.from([0xff, 0xc3]), Buffer.from('","model":"a"}')]);
    const out = spliceJson(bytes, { model: { set: 'b' } });
    expect(out.equals(Buffer.concat([Buffer.from('{"prompt":"'), Buffer.from([0xff, 0xc3]), Buffer.from('","model":"b"}')]))).toBe(true);
  });

  it('handles deep nesting without recursion', () => {
    const depth = 100_000;
    const text = `{"deep":${'['.repeat(depth)}${']'.repeat(depth)},"model":"a"}`;
    expect(splice(text, { model: { set: 'b' } })).toBe(text.replace('"model":"a"', '"model":"b"'));
  });

  it('refuses what is not an object, naming the byte', () => {
    expect(() => spliceJson(Buffer.from(' [1]'), { a: { set: 1 } })).toThrow(JsonSpliceError);
    expect(() => spliceJson(Buffer.from(' [1]'), { a: { set: 1 } })).toThrow('expected an object at byte 1');
    expect(() => spliceJson(Buffer.from('{}'), { a: { set: undefined } })).toThrow(/"a" is not JSON/);
  });
});
