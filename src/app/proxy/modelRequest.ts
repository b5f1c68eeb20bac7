/**
 * Model-using requests: which endpoint, what the governor must know about the
 * request (model, estimated prompt tokens, requested num_ctx / keep_alive),
 * and the body rewritten with its admission (spliced into the client's
 * bytes, never re-serialised).
 *
 * What each API can carry (see docs/proxy.md for the sources):
 * - Ollama's native `/api/generate`, `/api/chat`, `/api/embed`,
 *   `/api/embeddings` take `model`, `keep_alive` and `options` (`num_ctx`,
 *   `use_mmap`): everything is injected.
 * - Ollama's OpenAI layer (`/v1/chat/completions`, `/v1/completions`,
 *   `/v1/embeddings`) maps `model` but has no `keep_alive` and no `options`
 *   (openai/openai.go `ChatCompletionRequest` / `FromChatRequest`). So with
 *   `proxy.openAiChat: "translate"` (the default) the proxy turns
 *   `/v1/chat/completions` into the `/api/chat` request Ollama's layer would
 *   have made (src/app/proxy/openAiChatRequest.ts) and it is admitted and
 *   rewritten here as `chat`: everything is injected. What is still sent to
 *   `/v1/*` (the other two, untranslatable chat requests, `openAiChat:
 *   "forward"`) only gets its model rewritten; the runner gets Ollama's
 *   default context and keep-alive, and the governor's explicit unload
 *   bounds its lifetime.
 */
import type { Admission, AdmissionRequest, ModelEndpoint } from '../../streams/governorApi.js';
import { spliceJson, type JsonChange } from './jsonSplice.js';
import { parseKeepAlive } from './keepAlive.js';

const ENDPOINTS: Record<string, ModelEndpoint> = {
  '/api/generate': 'generate',
  '/api/chat': 'chat',
  '/api/embed': 'embed',
  '/api/embeddings': 'embeddings',
  '/v1/chat/completions': 'openai-chat',
  '/v1/completions': 'openai-completions',
  '/v1/embeddings': 'openai-embeddings',
};

/** The model endpoint a POST to `pathname` is, or null for everything forwarded untouched. */
export function modelEndpointOf(method: string | undefined, pathname: string): ModelEndpoint | null {
  if (method !== 'POST') return null;
  return ENDPOINTS[pathname.length > 1 && pathname.endsWith('/') ? pathname.slice(0, -1) : pathname] ?? null;
}

export const isOpenAiEndpoint = (endpoint: ModelEndpoint): boolean => endpoint.startsWith('openai-');

/** Meetily's own estimate: 0.35 tokens a character. */
export const TOKENS_PER_CHAR = 0.35;

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Text of a message's content: a string, or OpenAI content parts `{ type: 'text', text }`. */
function contentText(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (Array.isArray(content)) return content.reduce<number>((sum, part) => sum + (isObject(part) && typeof part.text === 'string' ? part.text.length : 0), 0);
  return 0;
}

/** Characters of the prompt the model will read, from prompt/system/suffix, messages or input. */
export function promptChars(body: Json): number {
  let chars = 0;
  for (const key of ['prompt', 'system', 'suffix'] as const) {
    const value = body[key];
    if (typeof value === 'string') chars += value.length;
    else if (Array.isArray(value)) chars += value.reduce<number>((s, v) => s + (typeof v === 'string' ? v.length : 0), 0);
  }
  if (Array.isArray(body.messages)) for (const message of body.messages) if (isObject(message)) chars += contentText(message.content);
  const input = body.input;
  if (typeof input === 'string') chars += input.length;
  else if (Array.isArray(input)) chars += input.reduce<number>((s, v) => s + (typeof v === 'string' ? v.length : 0), 0);
  return chars;
}

export const estimatePromptTokens = (body: Json): number => Math.ceil(promptChars(body) * TOKENS_PER_CHAR);

export class ModelRequestError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'ModelRequestError';
  }
}

/** The Go request struct of each native endpoint (ollama/ollama `api/types.go`), as encoding/json names it in errors. */
const GO_REQUEST_TYPES: Partial<Record<ModelEndpoint, string>> = { generate: 'GenerateRequest', chat: 'ChatRequest', embed: 'EmbedRequest', embeddings: 'EmbeddingRequest' };

/** encoding/json's name for the JSON type of a value, as in its UnmarshalTypeError. */
const goJsonType = (value: unknown): string => (Array.isArray(value) ? 'array' : typeof value === 'boolean' ? 'bool' : typeof value === 'object' ? 'object' : typeof value);

/**
 * What the governor needs from a parsed body, or null when the body names no
 * model (then it is forwarded as is and Ollama answers with its own error).
 * Throws ModelRequestError for a `keep_alive` or an `options` Ollama would refuse, naming the field.
 */
export function admissionRequestOf(body: unknown, endpoint: ModelEndpoint): Omit<AdmissionRequest, 'signal'> | null {
  if (!isObject(body) || typeof body.model !== 'string' || body.model === '') return null;
  const request: Omit<AdmissionRequest, 'signal'> = { model: body.model, endpoint, promptTokens: estimatePromptTokens(body) };
  if (isOpenAiEndpoint(endpoint)) return request; // keep_alive / options are not part of the OpenAI layer
  const options = body.options;
  // Ollama refuses such a body (a 400 from encoding/json); the rewrite must not turn it into one Ollama accepts.
  if (options !== undefined && options !== null && !isObject(options)) {
    throw new ModelRequestError('options', `json: cannot unmarshal ${goJsonType(options)} into Go struct field ${GO_REQUEST_TYPES[endpoint]}.options of type map[string]interface {}`);
  }
  if (isObject(options) && typeof options.num_ctx === 'number' && Number.isInteger(options.num_ctx) && options.num_ctx > 0) {
    request.requestedNumCtx = options.num_ctx;
  }
  if (isObject(options) && typeof options.num_batch === 'number' && Number.isInteger(options.num_batch) && options.num_batch > 0) {
    request.requestedNumBatch = options.num_batch;
  }
  if (body.keep_alive !== undefined && body.keep_alive !== null) {
    const parsed = parseKeepAlive(body.keep_alive);
    if (!parsed.ok) throw new ModelRequestError('keep_alive', parsed.error);
    request.requestedKeepAlive = body.keep_alive as number | string;
  }
  return request;
}

export interface RewriteSettings {
  /** false: inject `options.use_mmap: false` (weights as anonymous memory); true/undefined: leave it. */
  useMmap?: boolean;
}

/** What the admission changes in a body: top-level members, and members merged into `options`. */
export interface BodyChanges {
  /** `model`, `keep_alive`. */
  set: Json;
  /** `num_ctx`, `num_batch`, `use_mmap`, set inside `options` (created when it is absent or null). */
  options: Json;
}

/**
 * What the admission changes in `body`, or null when nothing changes (the
 * original bytes are forwarded then). Only keys the endpoint understands are
 * touched.
 */
export function bodyChangesOf(body: Json, endpoint: ModelEndpoint, admission: Admission, settings: RewriteSettings = {}): BodyChanges | null {
  const changes: BodyChanges = { set: {}, options: {} };
  if (admission.model !== body.model) changes.set.model = admission.model;
  if (!isOpenAiEndpoint(endpoint)) {
    if (admission.keepAlive !== null && admission.keepAlive !== body.keep_alive) changes.set.keep_alive = admission.keepAlive;
    // `options` is an object or absent/null here (admissionRequestOf refuses anything else): merged into, never replaced.
    const options = isObject(body.options) ? body.options : {};
    if (admission.numCtx !== null && options.num_ctx !== admission.numCtx) changes.options.num_ctx = admission.numCtx;
    if (admission.numBatch != null && options.num_batch !== admission.numBatch) changes.options.num_batch = admission.numBatch;
    if (settings.useMmap === false && options.use_mmap !== false) changes.options.use_mmap = false;
  }
  return Object.keys(changes.set).length > 0 || Object.keys(changes.options).length > 0 ? changes : null;
}

/** The parsed body as it is after the rewrite, or null when nothing changes (what the `x-memtide-*` headers report). */
export function rewriteBody(body: Json, endpoint: ModelEndpoint, admission: Admission, settings: RewriteSettings = {}): Json | null {
  const changes = bodyChangesOf(body, endpoint, admission, settings);
  if (!changes) return null;
  const rewritten: Json = { ...body, ...changes.set };
  if (Object.keys(changes.options).length > 0) rewritten.options = { ...(isObject(body.options) ? body.options : {}), ...changes.options };
  return rewritten;
}

/**
 * The body's bytes with the changes spliced in (src/app/proxy/jsonSplice.ts):
 * every byte outside the changed values is the client's, so numbers a double
 * cannot hold, spellings, escapes and whitespace reach Ollama as written.
 * `bytes` must be the valid JSON object `bodyChangesOf` was given, parsed.
 */
export function rewriteBodyBytes(bytes: Uint8Array, changes: BodyChanges): Buffer {
  const edits: Record<string, JsonChange> = {};
  for (const [key, value] of Object.entries(changes.set)) edits[key] = { set: value };
  if (Object.keys(changes.options).length > 0) {
    edits.options = { merge: Object.fromEntries(Object.entries(changes.options).map(([key, value]) => [key, { set: value }])) };
  }
  return spliceJson(bytes, edits);
}
