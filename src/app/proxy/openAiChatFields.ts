/**
 * The JSON types of a /v1/chat/completions body, as Ollama's Go decoder
 * checks them (ollama/ollama `openai/openai.go` `ChatCompletionRequest`): a
 * body it would refuse with a 400 is refused here too, before the governor
 * is asked, naming the field.
 */
import { ModelRequestError } from './modelRequest.js';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** encoding/json's name for the JSON type of a value, as in its UnmarshalTypeError. */
const goJsonType = (value: unknown): string =>
  Array.isArray(value) ? 'array' : typeof value === 'boolean' ? 'bool' : typeof value === 'number' ? `number ${String(value)}` : typeof value === 'object' ? 'object' : typeof value;

function typeError(field: string, value: unknown, goType: string): ModelRequestError {
  return new ModelRequestError(field, `json: cannot unmarshal ${goJsonType(value)} into Go struct field ChatCompletionRequest.${field} of type ${goType}`);
}

/** Go's decoding of a nullable field: null/absent is accepted (nil), any other type is refused. */
function check(body: Json, key: string, field: string, test: (v: unknown) => boolean, goType: string): void {
  const value = body[key];
  if (value !== undefined && value !== null && !test(value)) throw typeError(field, value, goType);
}

const isString = (v: unknown) => typeof v === 'string';
/** Finite: a number past a double's range (`1e400`, parsed as Infinity) Go refuses too (it would reach Ollama as null). */
const isNumber = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown) => Number.isInteger(v);
const isBool = (v: unknown) => typeof v === 'boolean';

/**
 * Refuses (ModelRequestError naming the field, in Go's words) a field of a
 * type Go's decoder refuses for `openai.ChatCompletionRequest`; null is
 * accepted everywhere, as Go decodes it to nil or the zero value.
 */
export function checkChatFieldTypes(body: Json): void {
  check(body, 'messages', 'messages', Array.isArray, '[]openai.Message');
  check(body, 'stream', 'stream', isBool, 'bool');
  check(body, 'stream_options', 'stream_options', isObject, 'openai.StreamOptions');
  if (isObject(body.stream_options)) check(body.stream_options, 'include_usage', 'stream_options.include_usage', isBool, 'bool');
  for (const key of ['max_tokens', 'max_completion_tokens', 'seed']) check(body, key, key, isInt, 'int');
  for (const key of ['temperature', 'top_p', 'frequency_penalty', 'presence_penalty']) check(body, key, key, isNumber, 'float64');
  check(body, 'response_format', 'response_format', isObject, 'openai.ResponseFormat');
  if (isObject(body.response_format)) {
    check(body.response_format, 'type', 'response_format.type', isString, 'string');
    check(body.response_format, 'json_schema', 'response_format.json_schema', isObject, 'openai.JsonSchema');
  }
  check(body, 'tools', 'tools', Array.isArray, '[]api.Tool');
  check(body, 'reasoning', 'reasoning', isObject, 'openai.Reasoning');
  if (isObject(body.reasoning)) check(body.reasoning, 'effort', 'reasoning.effort', isString, 'string');
  check(body, 'reasoning_effort', 'reasoning_effort', isString, 'string');
  if (!Array.isArray(body.messages)) return;
  body.messages.forEach((message: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isObject(message)) {
      if (message !== null) throw typeError(at, message, 'openai.Message');
      return;
    }
    for (const key of ['role', 'reasoning', 'name', 'tool_call_id']) check(message, key, `${at}.${key}`, isString, 'string');
    check(message, 'tool_calls', `${at}.tool_calls`, Array.isArray, '[]openai.ToolCall');
    if (!Array.isArray(message.tool_calls)) return;
    message.tool_calls.forEach((call: unknown, j) => {
      const where = `${at}.tool_calls[${j}]`;
      if (!isObject(call)) {
        if (call !== null) throw typeError(where, call, 'openai.ToolCall');
        return;
      }
      check(call, 'id', `${where}.id`, isString, 'string');
      check(call, 'type', `${where}.type`, isString, 'string');
      check(call, 'index', `${where}.index`, isInt, 'int');
      check(call, 'function', `${where}.function`, isObject, 'struct');
      if (isObject(call.function)) {
        check(call.function, 'name', `${where}.function.name`, isString, 'string');
        check(call.function, 'arguments', `${where}.function.arguments`, isString, 'string');
      }
    });
  });
}
