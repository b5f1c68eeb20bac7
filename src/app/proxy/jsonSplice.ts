/**
 * Lossless edits of a JSON object: members are set by splicing their new
 * value into the original bytes, so everything else stays byte for byte what
 * the client wrote. Re-serialising a parsed body instead would change it on
 * the way: numbers a double cannot hold (`12345678901234567890` →
 * `12345678901234567000`, `1e400` → `null`), their spelling (`1.0`, `1E2`),
 * escapes, whitespace.
 *
 * The input must already be valid JSON (the proxy checks it with
 * `parseJsonBody` first); the scanner only finds where members and values
 * start and end. It works on bytes, not decoded text: every byte JSON's
 * syntax cares about is ASCII, and a UTF-8 sequence never contains one, so
 * even invalid UTF-8 inside strings is kept as it was. Iterative: no stack
 * overflow on deep nesting.
 *
 * What an edit does to the object it applies to:
 * - an existing member (every occurrence, should the key be duplicated):
 *   only its value's bytes are replaced;
 * - a missing member is appended after the last member's value, as
 *   `,"key":value` (right after `{` and without the comma in an empty
 *   object), so the whitespace before `}` stays where it was;
 * - a merge into a member whose value is an object edits that object the
 *   same way (recursively); one whose value is `null` ("not set", as in Go)
 *   is replaced by a new object holding the merged members; any other value
 *   is left alone (a body Ollama refuses anyway).
 * New values are written by `JSON.stringify`, compact.
 */

/** Set a member's value, or merge members into the object it holds. */
export type JsonChange = { set: unknown } | { merge: JsonChanges };
/** Changes by member name (build it with `Object.fromEntries` or plain keys; `__proto__` must be an own key). */
export type JsonChanges = Readonly<Record<string, JsonChange>>;

export class JsonSpliceError extends Error {
  readonly code = 'MEMTIDE_ERR_JSON_SPLICE';
  constructor(
    message: string,
    /** Byte offset in the input. */
    readonly offset: number,
  ) {
    super(`${message} at byte ${offset}`);
    this.name = 'JsonSpliceError';
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const isWhitespace = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/** One member of an object: where its key and value are (value end exclusive). */
export interface JsonMember {
  key: string;
  keyStart: number;
  valueStart: number;
  valueEnd: number;
}

function skipWhitespace(bytes: Uint8Array, i: number): number {
  while (isWhitespace(bytes[i])) i += 1;
  return i;
}

/** `i` at an opening quote: the index after the closing one. */
function skipString(bytes: Uint8Array, i: number): number {
  const n = bytes.length;
  for (i += 1; i < n; i += 1) {
    const c = bytes[i];
    if (c === BACKSLASH) i += 1;
    else if (c === QUOTE) return i + 1;
  }
  throw new JsonSpliceError('unterminated string', n);
}

/** `i` where a value starts: the index right after it. */
function skipValue(bytes: Uint8Array, i: number): number {
  const n = bytes.length;
  const c = bytes[i];
  if (c === QUOTE) return skipString(bytes, i);
  if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
    let depth = 0;
    while (i < n) {
      const d = bytes[i];
      if (d === QUOTE) {
        i = skipString(bytes, i);
        continue;
      }
      if (d === OPEN_OBJECT || d === OPEN_ARRAY) depth += 1;
      else if (d === CLOSE_OBJECT || d === CLOSE_ARRAY) depth -= 1;
      i += 1;
      if (depth === 0) return i;
    }
    throw new JsonSpliceError('unterminated object or array', n);
  }
  // A number or a literal: up to the next delimiter.
  const start = i;
  while (i < n && !isWhitespace(bytes[i]) && bytes[i] !== COMMA && bytes[i] !== CLOSE_OBJECT && bytes[i] !== CLOSE_ARRAY) i += 1;
  if (i === start) throw new JsonSpliceError('expected a value', start);
  return i;
}

function decodeKey(bytes: Uint8Array, start: number, end: number): string {
  const raw = Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start);
  // Only a key with escapes ("mo\u0064el" is "model") needs JSON's decoding.
  return raw.includes(BACKSLASH) ? (JSON.parse(raw.toString('utf8')) as string) : raw.subarray(1, -1).toString('utf8');
}

/** The members of the object whose `{` is at `open`, in order, and where its `}` is. */
export function objectMembers(bytes: Uint8Array, open: number): { members: JsonMember[]; close: number } {
  if (bytes[open] !== OPEN_OBJECT) throw new JsonSpliceError('expected an object', open);
  const members: JsonMember[] = [];
  let i = skipWhitespace(bytes, open + 1);
  if (bytes[i] === CLOSE_OBJECT) return { members, close: i };
  for (;;) {
    if (bytes[i] !== QUOTE) throw new JsonSpliceError('expected a property name', i);
    const keyStart = i;
    const keyEnd = skipString(bytes, i);
    i = skipWhitespace(bytes, keyEnd);
    if (bytes[i] !== COLON) throw new JsonSpliceError("expected ':'", i);
    const valueStart = skipWhitespace(bytes, i + 1);
    const valueEnd = skipValue(bytes, valueStart);
    members.push({ key: decodeKey(bytes, keyStart, keyEnd), keyStart, valueStart, valueEnd });
    i = skipWhitespace(bytes, valueEnd);
    if (bytes[i] === COMMA) {
      i = skipWhitespace(bytes, i + 1);
      continue;
    }
    if (bytes[i] === CLOSE_OBJECT) return { members, close: i };
    throw new JsonSpliceError("expected ',' or '}'", i);
  }
}

/** Replace `[start, end)` with `text` (an insertion when start = end). */
interface Edit {
  start: number;
  end: number;
  text: string;
}

/** The value a change creates where there was none (a merge makes a new object). */
function materialise(change: JsonChange): unknown {
  if ('set' in change) return change.set;
  return Object.fromEntries(Object.entries(change.merge).map(([key, inner]) => [key, materialise(inner)]));
}

function jsonText(value: unknown, key: string): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new TypeError(`the new value of "${key}" is not JSON (${typeof value})`);
  return text;
}

const isLiteralNull = (bytes: Uint8Array, start: number, end: number) =>
  end - start === 4 && bytes[start] === 0x6e && bytes[start + 1] === 0x75 && bytes[start + 2] === 0x6c && bytes[start + 3] === 0x6c;

function editsOfObject(bytes: Uint8Array, open: number, changes: JsonChanges, edits: Edit[]): void {
  const { members } = objectMembers(bytes, open);
  const appended: string[] = [];
  for (const [key, change] of Object.entries(changes)) {
    const present = members.filter((m) => m.key === key);
    if (present.length === 0) {
      appended.push(`${JSON.stringify(key)}:${jsonText(materialise(change), key)}`);
      continue;
    }
    for (const member of present) {
      if ('set' in change) {
        edits.push({ start: member.valueStart, end: member.valueEnd, text: jsonText(change.set, key) });
      } else if (bytes[member.valueStart] === OPEN_OBJECT) {
        editsOfObject(bytes, member.valueStart, change.merge, edits);
      } else if (isLiteralNull(bytes, member.valueStart, member.valueEnd)) {
        edits.push({ start: member.valueStart, end: member.valueEnd, text: jsonText(materialise(change), key) });
      }
    }
  }
  if (appended.length === 0) return;
  const last = members[members.length - 1];
  const at = last ? last.valueEnd : open + 1;
  edits.push({ start: at, end: at, text: `${last ? ',' : ''}${appended.join(',')}` });
}

/**
 * The JSON object in `bytes` with `changes` applied (see the module comment),
 * every other byte unchanged. Throws JsonSpliceError when the text is not an
 * object (it must be valid JSON: nothing else is checked).
 */
export function spliceJson(bytes: Uint8Array, changes: JsonChanges): Buffer {
  const open = skipWhitespace(bytes, 0);
  const edits: Edit[] = [];
  editsOfObject(bytes, open, changes, edits);
  // Disjoint by construction; an insertion at a value's end sorts after the replacement of that value.
  edits.sort((a, b) => a.start - b.start || a.end - b.end);
  const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Buffer[] = [];
  let cursor = 0;
  for (const edit of edits) {
    parts.push(source.subarray(cursor, edit.start), Buffer.from(edit.text, 'utf8'));
    cursor = edit.end;
  }
  parts.push(source.subarray(cursor));
  return Buffer.concat(parts);
}
