/**
 * Ollama's `/api/chat` answer -> what its `/v1/chat/completions` would have
 * answered (ollama/ollama `openai/openai.go` `ToChatCompletion`, `ToChunk`,
 * `ToUsage`, `NewError`; `middleware/openai.go` `ChatWriter`):
 * - one JSON answer -> a `chat.completion` object;
 * - an NDJSON stream -> SSE `data: {chat.completion.chunk}` frames, one per
 *   line, as they arrive (a Transform: nothing is held back but an unfinished
 *   line), then the usage chunk when `stream_options.include_usage`, then
 *   `data: [DONE]`;
 * - an error answer (`{"error": "..."}`, any non-2xx status) -> OpenAI's error
 *   shape under the same status; a mid-stream `{"error": ...}` line -> one
 *   `data: {"error": {...}}` frame, and the stream ends there.
 */
import { randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { proxyErrorBody, type ProxyErrorReply } from './errorReply.js';
import type { ResponseTransform, UpstreamHead } from './forward.js';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Longest NDJSON line held while waiting for its end (an answer chunk is a few bytes; this is a runaway upstream). */
export const MAX_LINE_BYTES = 8 * 1024 * 1024;

let lastId = 0;
/** `chatcmpl-<n>`, like Ollama's (it draws n at random below 999; a counter never repeats within a run). */
export const nextCompletionId = (): string => `chatcmpl-${(lastId = (lastId + 1) % 1_000_000)}`;

/** `openai.NewError`'s types (plus 413, which only memtide answers). */
const errorType = (status: number) => (status === 400 || status === 413 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error');

export const openAiErrorBody = (status: number, message: string): Json => ({ error: { message, type: errorType(status), param: null, code: null } });

/** The message of an Ollama error body (`{"error": "..."}`); the raw text when it is not one, as Ollama's layer does. */
export function errorMessageOf(text: string): string {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (isObject(parsed)) {
      if (typeof parsed.error === 'string') return parsed.error;
      if (isObject(parsed.error) && typeof parsed.error.message === 'string') return parsed.error.message;
    }
  } catch {
    // not JSON: the text itself
  }
  return text.trim();
}

interface ToolCall {
  id: string;
  index: number;
  type: 'function';
  function: { name: string; arguments: string };
}

/** `ToToolCalls`: arguments as a JSON string, an id for each (Ollama's own, or a new `call_*`). */
function toolCallsOf(message: Json): ToolCall[] {
  if (!Array.isArray(message.tool_calls)) return [];
  return message.tool_calls.map((call: unknown, i) => {
    const c = isObject(call) ? call : {};
    const fn = isObject(c.function) ? c.function : {};
    return {
      id: typeof c.id === 'string' && c.id !== '' ? c.id : `call_${randomBytes(6).toString('hex')}`,
      index: typeof fn.index === 'number' ? fn.index : i,
      type: 'function',
      function: { name: typeof fn.name === 'string' ? fn.name : '', arguments: JSON.stringify(fn.arguments ?? null) },
    };
  });
}

const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

/** `ToUsage`. */
export function usageOf(answer: Json): Json {
  const prompt = count(answer.prompt_eval_count);
  const completion = count(answer.eval_count);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

const seconds = (iso: unknown, fallback: number) => {
  const ms = typeof iso === 'string' ? Date.parse(iso) : NaN;
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : fallback;
};

/** OpenAI's assistant message: content always, `reasoning` and `tool_calls` only when there are some. */
function messageOf(message: Json, role: unknown, toolCalls: ToolCall[]): Json {
  const out: Json = { role, content: typeof message.content === 'string' ? message.content : '' };
  if (typeof message.thinking === 'string' && message.thinking !== '') out.reasoning = message.thinking;
  if (toolCalls.length > 0) out.tool_calls = toolCalls;
  return out;
}

/** `ToChatCompletion`: one /api/chat JSON answer as a `chat.completion`. */
export function chatCompletionOf(answer: Json, id: string, nowSeconds = Math.floor(Date.now() / 1000)): Json {
  const message = isObject(answer.message) ? answer.message : {};
  const toolCalls = toolCallsOf(message);
  const reason = toolCalls.length > 0 ? 'tool_calls' : typeof answer.done_reason === 'string' && answer.done_reason !== '' ? answer.done_reason : null;
  return {
    id,
    object: 'chat.completion',
    created: seconds(answer.created_at, nowSeconds),
    model: answer.model,
    system_fingerprint: 'fp_ollama',
    choices: [{ index: 0, message: messageOf(message, message.role ?? 'assistant', toolCalls), finish_reason: reason }],
    usage: usageOf(answer),
  };
}

const frame = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;

export interface ChatStreamOptions {
  id: string;
  /** `created` of every chunk: when the request came (seconds). */
  createdSeconds: number;
  includeUsage: boolean;
}

/**
 * NDJSON /api/chat stream in, SSE `chat.completion.chunk` frames out.
 * Lines are cut on `\n` in bytes (a UTF-8 sequence never holds that byte, so
 * a character split across chunks is whole again in its line).
 */
export class ChatSseTransform extends Transform {
  private partial: Buffer = Buffer.alloc(0);
  private toolCallSent = false;
  /** The readable side ended ([DONE] or an error frame): everything after is dropped. */
  private over = false;

  constructor(private readonly options: ChatStreamOptions) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.over) return callback();
    let data = this.partial.length > 0 ? Buffer.concat([this.partial, chunk]) : chunk;
    let newline = data.indexOf(0x0a);
    while (newline >= 0 && !this.over) {
      this.line(data.subarray(0, newline));
      data = data.subarray(newline + 1);
      newline = data.indexOf(0x0a);
    }
    this.partial = this.over ? Buffer.alloc(0) : Buffer.from(data);
    if (this.partial.length > MAX_LINE_BYTES) this.fail({ status: 502, message: `upstream sent a line longer than ${MAX_LINE_BYTES} bytes`, code: 'MEMTIDE_ERR_UPSTREAM' });
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (!this.over && this.partial.length > 0) this.line(this.partial); // Ollama's last line may lack its newline
    this.partial = Buffer.alloc(0);
    callback();
  }

  /** Ends the stream with an error frame (the upstream was cut, or sent garbage); an unfinished line is dropped. */
  fail(reply: ProxyErrorReply): void {
    if (this.over) return;
    this.partial = Buffer.alloc(0);
    this.finishWith(frame(proxyErrorBody(reply, true)));
  }

  private finishWith(text: string): void {
    this.over = true;
    this.push(text);
    this.push(null);
  }

  private line(bytes: Buffer): void {
    const text = bytes.toString('utf8').trim();
    if (text === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.fail({ status: 502, message: `upstream sent a line that is not JSON: ${text.slice(0, 200)}`, code: 'MEMTIDE_ERR_UPSTREAM' });
      return;
    }
    if (!isObject(value)) return;
    if (value.error !== undefined) {
      this.finishWith(frame(openAiErrorBody(500, errorMessageOf(text))));
      return;
    }
    const chunk = this.chunkOf(value);
    this.push(frame(chunk));
    if (value.done !== true) return;
    if (this.options.includeUsage) this.push(frame({ ...chunk, choices: [], usage: usageOf(value) }));
    this.finishWith('data: [DONE]\n\n');
  }

  /** `ToChunk`. */
  private chunkOf(answer: Json): Json {
    const message = isObject(answer.message) ? answer.message : {};
    const toolCalls = toolCallsOf(message);
    const reason = typeof answer.done_reason === 'string' && answer.done_reason !== '' ? answer.done_reason : null;
    const finish = reason === null ? null : this.toolCallSent || toolCalls.length > 0 ? 'tool_calls' : reason;
    if (toolCalls.length > 0) this.toolCallSent = true;
    return {
      id: this.options.id,
      object: 'chat.completion.chunk',
      created: this.options.createdSeconds,
      model: answer.model,
      system_fingerprint: 'fp_ollama',
      choices: [{ index: 0, delta: messageOf(message, 'assistant', toolCalls), finish_reason: finish }],
    };
  }
}

const JSON_TYPE: [string, string] = ['Content-Type', 'application/json'];

/** Largest error or non-streamed answer converted (beyond it, passed through as Ollama sent it). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

export interface ChatResponseOptions {
  stream: boolean;
  includeUsage: boolean;
  /** Seconds; default now. */
  createdSeconds?: number;
  id?: string;
}

/** How forward() turns the upstream's /api/chat answer into the /v1 one the client asked for. */
export function chatResponseTransform(options: ChatResponseOptions): (head: UpstreamHead) => ResponseTransform {
  const id = options.id ?? nextCompletionId();
  const createdSeconds = options.createdSeconds ?? Math.floor(Date.now() / 1000);
  return (head) => {
    if (head.status < 200 || head.status >= 300) {
      return {
        kind: 'buffer',
        limitBytes: MAX_ANSWER_BYTES,
        rewrite: (body) => ({ status: head.status, headers: [JSON_TYPE], body: Buffer.from(`${JSON.stringify(openAiErrorBody(head.status, errorMessageOf(body.toString('utf8'))))}\n`) }),
      };
    }
    if (options.stream) {
      const body = new ChatSseTransform({ id, createdSeconds, includeUsage: options.includeUsage });
      return { kind: 'stream', headers: [['Content-Type', 'text/event-stream']], body, fail: (reply) => body.fail(reply) };
    }
    return {
      kind: 'buffer',
      limitBytes: MAX_ANSWER_BYTES,
      rewrite: (body) => {
        let answer: unknown;
        try {
          answer = JSON.parse(body.toString('utf8'));
        } catch {
          answer = undefined;
        }
        if (!isObject(answer) || answer.error !== undefined) {
          const message = isObject(answer) ? errorMessageOf(JSON.stringify(answer)) : `upstream answer is not JSON: ${body.toString('utf8').slice(0, 200)}`;
          return { status: 502, headers: [JSON_TYPE], body: Buffer.from(`${JSON.stringify(openAiErrorBody(502, message))}\n`) };
        }
        return { status: head.status, headers: [JSON_TYPE], body: Buffer.from(`${JSON.stringify(chatCompletionOf(answer, id, createdSeconds))}\n`) };
      },
    };
  };
}
