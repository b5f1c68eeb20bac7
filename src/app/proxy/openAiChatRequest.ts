/**
 * `POST /v1/chat/completions` body -> `POST /api/chat` body, the way Ollama's
 * own OpenAI layer does it (ollama/ollama `openai/openai.go`
 * `FromChatRequest`, `middleware/openai.go` `ChatMiddleware`), so the
 * governor can inject `options.num_ctx` and `keep_alive`, which the OpenAI
 * layer has no place for.
 *
 * Faithful means: Ollama would have built this same /api/chat request from
 * the /v1 body. So `temperature` and `top_p` default to 1.0 (as Ollama's
 * layer sets them, overriding the Modelfile's), content parts become one
 * message each (text parts and images are not joined, as in Ollama), a
 * `stop` array keeps only its strings. Whatever this cannot reproduce
 * exactly (`n` > 1, `logprobs`, an unknown content part, an image that is
 * not a base64 `data:` URL, anything Ollama's layer itself refuses) is not
 * translated: the caller forwards the body untouched to /v1, so nothing is
 * lost and Ollama answers as it always did. A field of the wrong JSON type
 * (Go's decoder would refuse it) throws ModelRequestError naming it.
 *
 * Raw JSON the request only passes on (`tools`, a `json_schema`'s schema) is
 * copied as the client's bytes, so numbers a double cannot hold survive; tool
 * call arguments as the client's JSON text.
 */
import { objectMembers } from './jsonSplice.js';
import { checkChatFieldTypes } from './openAiChatFields.js';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Why a body is forwarded to /v1 untranslated (a short code for counters, and the detail for the log). */
export interface Untranslatable {
  code: 'n' | 'logprobs' | 'messages' | 'content' | 'content-part' | 'image' | 'tool-call' | 'reasoning' | 'debug';
  detail: string;
}

export type ChatTranslation =
  | {
      translated: true;
      /** The /api/chat body, serialised. */
      bytes: Buffer;
      /** The same, parsed (what admission and the `X-Memtide-*` headers read). */
      body: Json;
      stream: boolean;
      /** `stream_options.include_usage`: a usage chunk before `[DONE]`. */
      includeUsage: boolean;
    }
  | { translated: false; why: Untranslatable };

/** JSON spliced in as written by the client. */
class RawJson {
  constructor(readonly text: string) {}
}

const isString = (v: unknown) => typeof v === 'string';
const present = (v: unknown) => v !== undefined && v !== null;

class Skip extends Error {
  constructor(readonly why: Untranslatable) {
    super(why.detail);
  }
}
const skip = (code: Untranslatable['code'], detail: string): never => {
  throw new Skip({ code, detail });
};

const IMAGE_PREFIXES = ['data:;base64,', ...['jpeg', 'jpg', 'png', 'webp'].map((t) => `data:image/${t};base64,`)];

/** The base64 of an `image_url` part, as Ollama accepts it (a data: URL of a known type, strict standard base64). */
function imageOf(part: Json): string {
  const value = part.image_url;
  const url = isObject(value) ? value.url : value;
  if (typeof url !== 'string') return skip('image', 'an image_url part without a URL string');
  const prefix = IMAGE_PREFIXES.find((p) => url.startsWith(p));
  if (!prefix) return skip('image', 'an image_url that is not a base64 data: URL of a jpeg, png or webp (Ollama refuses it)');
  const data = url.slice(prefix.length);
  // Ollama decodes and re-encodes it: only canonical base64 comes out the same (Node's decoder is lenient, Go's is not).
  if (Buffer.from(data, 'base64').toString('base64') !== data) return skip('image', 'an image_url whose base64 is not canonical');
  return data;
}

/** Arguments of an assistant's tool call: Go parses the string into a map (FromCompletionToolCall). */
function toolCallsOf(calls: unknown[]): Json[] {
  return calls.map((call) => {
    const fn = isObject(call) && isObject(call.function) ? call.function : {};
    const text = typeof fn.arguments === 'string' ? fn.arguments : '';
    let args: unknown;
    try {
      args = JSON.parse(text);
    } catch {
      return skip('tool-call', 'tool call arguments that are not JSON (Ollama refuses them)');
    }
    if (args !== null && !isObject(args)) skip('tool-call', 'tool call arguments that are not a JSON object');
    // Passed on as the client's JSON text: re-serialising the parsed value recursed once per nesting level
    // (deep arguments overflowed the stack, a 400 naming no field).
    return { function: { name: typeof fn.name === 'string' ? fn.name : '', arguments: new RawJson(text.trim()) } };
  });
}

/** `name`, else the name of the tool call `tool_call_id` answers (the last one wins, as in Ollama). */
function toolNameOf(message: Json, messages: unknown[]): string {
  if (typeof message.role !== 'string' || message.role.toLowerCase() !== 'tool') return '';
  if (typeof message.name === 'string' && message.name !== '') return message.name;
  if (typeof message.tool_call_id !== 'string' || message.tool_call_id === '') return '';
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    const m = messages[i];
    if (!isObject(m) || !Array.isArray(m.tool_calls)) continue;
    for (const call of m.tool_calls) {
      if (isObject(call) && call.id === message.tool_call_id && isObject(call.function) && typeof call.function.name === 'string') return call.function.name;
    }
  }
  return '';
}

/** One api.Message with Go's `omitempty` fields left out when empty. */
function apiMessage(role: string, content: string, extra: { thinking?: string; images?: string[]; toolCalls?: Json[]; toolName?: string }): Json {
  const message: Json = { role, content };
  if (extra.thinking) message.thinking = extra.thinking;
  if (extra.images?.length) message.images = extra.images;
  if (extra.toolCalls?.length) message.tool_calls = extra.toolCalls;
  if (extra.toolName) message.tool_name = extra.toolName;
  return message;
}

function messagesOf(messages: unknown[]): Json[] {
  const out: Json[] = [];
  for (const raw of messages) {
    // A JSON null decodes to a zero Message: content nil without tool calls, which Ollama refuses.
    const message = isObject(raw) ? raw : {};
    const role = typeof message.role === 'string' ? message.role : '';
    const thinking = typeof message.reasoning === 'string' ? message.reasoning : '';
    const toolName = toolNameOf(message, messages);
    const calls = Array.isArray(message.tool_calls) ? message.tool_calls : null;
    const content = message.content;
    if (typeof content === 'string') {
      out.push(apiMessage(role, content, { thinking, toolCalls: calls ? toolCallsOf(calls) : [], toolName }));
    } else if (Array.isArray(content)) {
      for (const part of content) {
        if (!isObject(part)) return skip('content-part', 'a content part that is not an object');
        if (part.type === 'text') {
          if (typeof part.text !== 'string') return skip('content-part', 'a text part without a text string');
          out.push(apiMessage(role, part.text, {}));
        } else if (part.type === 'image_url') {
          out.push(apiMessage(role, '', { images: [imageOf(part)] }));
        } else {
          return skip('content-part', `a content part of type ${JSON.stringify(part.type) ?? 'undefined'}`);
        }
      }
      // Ollama hangs the tool calls (and the tool name, thinking) on the last message so far.
      const last = out[out.length - 1];
      if (last && calls && calls.length > 0) {
        last.tool_calls = toolCallsOf(calls);
        if (toolName) last.tool_name = toolName;
        if (thinking) last.thinking = thinking;
        else delete last.thinking;
      }
    } else {
      if (calls === null) return skip('content', `a message whose content is ${content === undefined || content === null ? 'missing' : typeof content} without tool calls (Ollama refuses it)`);
      out.push(apiMessage(role, '', { thinking, toolCalls: toolCallsOf(calls) }));
    }
  }
  return out;
}

/** The raw bytes of `key`'s value in the object at `open` (the last occurrence, as JSON.parse keeps). */
function rawMember(bytes: Uint8Array, open: number, key: string): { start: number; end: number } | null {
  const member = objectMembers(bytes, open).members.filter((m) => m.key === key).at(-1);
  return member ? { start: member.valueStart, end: member.valueEnd } : null;
}

function rawText(bytes: Buffer, at: { start: number; end: number } | null): RawJson | null {
  return at ? new RawJson(bytes.subarray(at.start, at.end).toString('utf8')) : null;
}

function serialise(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map(serialise).join(',')}]`;
  if (isObject(value)) {
    return `{${Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}:${serialise(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

const firstNonSpace = (bytes: Buffer) => {
  let i = 0;
  while (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d) i += 1;
  return i;
};

/**
 * Translates a parsed /v1/chat/completions body (and its bytes, for the raw
 * parts) into an /api/chat body, or says why not. `body` must name a model.
 * Throws ModelRequestError for a field of the wrong type.
 */
export function translateChatRequest(body: Json, bytes: Buffer): ChatTranslation {
  checkChatFieldTypes(body);
  try {
    if (present(body.n) && body.n !== 1) skip('n', `n: ${JSON.stringify(body.n)} (several choices; Ollama's /api/chat answers one)`);
    if (present(body.logprobs) && body.logprobs !== false) skip('logprobs', 'logprobs (not part of /api/chat here)');
    if (present(body.top_logprobs)) skip('logprobs', 'top_logprobs (not part of /api/chat here)');
    if (present(body._debug_render_only) && body._debug_render_only !== false) skip('debug', '_debug_render_only');
    if (!Array.isArray(body.messages) || body.messages.length === 0) skip('messages', 'no messages (Ollama refuses it; /api/chat would preload instead)');
    const messages = messagesOf(body.messages as unknown[]);

    const open = firstNonSpace(bytes);
    const options: Json = {};
    const stop = body.stop;
    if (typeof stop === 'string') options.stop = [stop];
    else if (Array.isArray(stop)) options.stop = stop.filter(isString);
    // Go's ints (int64) as the client wrote them: a double would change a seed past 2^53.
    const maxTokens = present(body.max_tokens) ? 'max_tokens' : 'max_completion_tokens';
    if (present(body[maxTokens])) options.num_predict = rawText(bytes, rawMember(bytes, open, maxTokens));
    options.temperature = present(body.temperature) ? body.temperature : 1.0;
    if (present(body.seed)) options.seed = rawText(bytes, rawMember(bytes, open, 'seed'));
    if (present(body.frequency_penalty)) options.frequency_penalty = body.frequency_penalty;
    if (present(body.presence_penalty)) options.presence_penalty = body.presence_penalty;
    options.top_p = present(body.top_p) ? body.top_p : 1.0;

    let format: unknown;
    const responseFormat = isObject(body.response_format) ? body.response_format : null;
    const formatType = typeof responseFormat?.type === 'string' ? responseFormat.type.trim().toLowerCase() : '';
    if (formatType === 'json_object') format = 'json';
    else if (formatType === 'json_schema' && isObject(responseFormat?.json_schema)) {
      const rf = rawMember(bytes, open, 'response_format');
      const js = rf ? rawMember(bytes, rf.start, 'json_schema') : null;
      const schema = js ? rawText(bytes, rawMember(bytes, js.start, 'schema')) : null;
      if (schema && schema.text !== 'null') format = schema;
    }

    const effort = isObject(body.reasoning) && typeof body.reasoning.effort === 'string' ? body.reasoning.effort : typeof body.reasoning_effort === 'string' ? body.reasoning_effort : '';
    let think: unknown;
    if (effort !== '') {
      if (!['high', 'medium', 'low', 'none'].includes(effort)) skip('reasoning', `reasoning effort ${JSON.stringify(effort)} (Ollama refuses it)`);
      think = effort === 'none' ? false : effort;
    }
    const tools = Array.isArray(body.tools) && body.tools.length > 0 ? rawText(bytes, rawMember(bytes, open, 'tools')) : null;

    const stream = body.stream === true;
    const translated: Json = { model: body.model, messages, stream, format, options, tools: tools ?? undefined, think };
    const text = serialise(translated);
    return {
      translated: true,
      bytes: Buffer.from(text, 'utf8'),
      body: JSON.parse(text) as Json,
      stream,
      includeUsage: isObject(body.stream_options) && body.stream_options.include_usage === true,
    };
  } catch (error) {
    if (error instanceof Skip) return { translated: false, why: error.why };
    throw error;
  }
}
