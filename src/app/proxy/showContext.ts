/**
 * `POST /api/show` answers with the context memtide really runs a model at.
 *
 * Meetily reads `model_info["<family>.context_length"]` (the trained
 * context, 131072 for llama3.2) and cuts its transcript into chunks of that
 * minus 300 tokens; the request then runs at a far smaller num_ctx and
 * Ollama silently drops the start of the prompt. Told the context the
 * governor will give it (minus the answer reserve), Meetily's chunks fit,
 * with room for the answer, and every chunk gets the same num_ctx (no
 * reloads). The trained value stays readable as
 * `model_info["memtide.trained_context_length"]`.
 *
 * The answer is edited with jsonSplice: every other byte (tensors included,
 * in a verbose answer) is Ollama's.
 */
import type { ContextRun, ModelGovernor } from '../../streams/governorApi.js';
import type { BufferTransform, RewrittenAnswer, UpstreamHead } from './forward.js';
import { parseJsonBody } from './jsonBody.js';
import { spliceJson, type JsonChange } from './jsonSplice.js';

/** Largest /api/show answer rewritten (a verbose one lists every tensor); bigger ones pass through. */
export const SHOW_LIMIT_BYTES = 8 * 1024 * 1024;

export const TRAINED_CONTEXT_KEY = 'memtide.trained_context_length';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The model an /api/show request names (`model`, or the older `name`), or null. */
export function showModelOf(body: unknown): string | null {
  if (!isObject(body)) return null;
  for (const key of ['model', 'name']) {
    const value = body[key];
    if (typeof value === 'string' && value !== '') return value;
  }
  return null;
}

/**
 * The answer with every `*.context_length` of `model_info` set to what
 * `advertise(trained)` says, and the trained value under
 * {@link TRAINED_CONTEXT_KEY}; null when there is nothing to rewrite (not
 * JSON, no such key, or `advertise` declines).
 */
export function rewriteShowAnswer(bytes: Buffer, advertise: (trained: number) => number | null): { body: Buffer; advertised: number } | null {
  const parsed = parseJsonBody(bytes);
  if (!parsed.ok || !isObject(parsed.value) || !isObject(parsed.value.model_info)) return null;
  const info = parsed.value.model_info;
  if (info[TRAINED_CONTEXT_KEY] !== undefined) return null; // already ours (a proxy in front of a proxy)
  const keys = Object.keys(info).filter((key) => key.endsWith('.context_length') && Number.isSafeInteger(info[key]) && (info[key] as number) > 0);
  if (keys.length === 0) return null;
  // The architecture's own key is the one clients read (`<details.family>.context_length`).
  const architecture = info['general.architecture'];
  const primary = keys.find((key) => key === `${String(architecture)}.context_length`) ?? keys[0]!;
  const changes: Record<string, JsonChange> = {};
  let advertised: number | null = null;
  for (const key of keys) {
    const value = advertise(info[key] as number);
    if (value === null) return null;
    changes[key] = { set: value };
    if (key === primary) advertised = value;
  }
  changes[TRAINED_CONTEXT_KEY] = { set: info[primary] };
  return { body: spliceJson(bytes, { model_info: { merge: changes } }), advertised: advertised! };
}

/** forward()'s transform of an /api/show answer: 2xx JSON answers of a model the governor advertises a context for. */
export function showContextTransform(governor: ModelGovernor, model: string, runsAt: ContextRun): (head: UpstreamHead) => BufferTransform | null {
  const advertisedContext = governor.advertisedContext?.bind(governor);
  return (head) => {
    if (!advertisedContext || head.status < 200 || head.status >= 300) return null;
    if (!/^application\/json/i.test(head.headers['content-type'] ?? '')) return null;
    return {
      kind: 'buffer',
      limitBytes: SHOW_LIMIT_BYTES,
      rewrite: (body): RewrittenAnswer | null => {
        const result = rewriteShowAnswer(body, (trained) => advertisedContext(model, trained, runsAt));
        return result ? { status: head.status, headers: [['X-Memtide-Context', String(result.advertised)]], body: result.body } : null;
      },
    };
  };
}
