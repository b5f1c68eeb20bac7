/**
 * Meetily's summary flow (frontend/src-tauri/src/summary/processor.rs),
 * against whatever URL it is given as its Ollama endpoint:
 *
 * - tokens are estimated as characters x 0.35 (`rough_token_count`);
 * - the threshold is the model's context as `/api/show` tells it, minus 300
 *   (`meetilyContextSize`, `meetilyTokenThreshold`);
 * - a transcript at or above the threshold is cut into
 *   chunks of threshold - 300 tokens with 100 tokens of overlap at sentence
 *   or word boundaries (`chunk_text`), each summarized by one request, back
 *   to back; more than one chunk summary is combined by one more request;
 * - the final report is one more request (an English transcript needs no
 *   normalization pass);
 * - every request is `POST /v1/chat/completions`, non-streaming, with
 *   `reasoning_effort: "none"` and no `keep_alive` and no `options` (Meetily
 *   never sends them); the prompts are Meetily-sized (prompts.ts).
 *
 * The random-weight whisper model writes a few words per chunk where real
 * speech gives ~150 words a minute; so the prompts have the size a real
 * meeting's would, each transcript line is repeated (its own words) up to
 * that length before the rule runs. Requests are counted: a request is lost
 * when it gets no answer, an HTTP error, or an answer without content.
 */
import type { RequestCounts } from '../protocol.js';
import { CHUNK_SYSTEM, chunkUserPrompt, COMBINE_SYSTEM, combineUserPrompt, FINAL_SYSTEM, finalUserPrompt } from './prompts.js';

export function roughTokenCount(text: string): number {
  return Math.ceil([...text].length * 0.35);
}

/** `chunk_text`: character windows of `chunkTokens`, `overlapTokens` overlap, cut at ". " or " " when past the overlap. */
export function chunkText(text: string, chunkTokens: number, overlapTokens: number): string[] {
  if (text === '' || chunkTokens === 0) return [];
  const chunkChars = Math.ceil(chunkTokens / 0.35);
  const overlapChars = Math.ceil(overlapTokens / 0.35);
  const chars = [...text];
  if (chars.length <= chunkChars) return [text];
  const chunks: string[] = [];
  let start = 0;
  while (start < chars.length) {
    const end = Math.min(start + chunkChars, chars.length);
    let emittedEnd = end;
    if (end < chars.length) {
      const slice = chars.slice(start, end).join('');
      const sentence = slice.lastIndexOf('. ');
      const word = slice.lastIndexOf(' ');
      const boundary = sentence >= 0 && sentence + 2 > overlapChars ? sentence + 2 : word >= 0 && word + 1 > overlapChars ? word + 1 : null;
      if (boundary !== null) emittedEnd = start + [...slice.slice(0, boundary)].length;
    }
    chunks.push(chars.slice(start, emittedEnd).join(''));
    if (emittedEnd >= chars.length) break;
    start = Math.max(emittedEnd - overlapChars, start + 1);
  }
  return chunks;
}

/** Each line repeated (its own words) to `words` words: the length real speech would have. */
export function speechLengthTranscript(lines: readonly string[], words: number): string {
  return lines
    .map((line) => {
      const own = line.split(/\s+/).filter((w) => w !== '');
      if (own.length === 0) return '';
      const out: string[] = [];
      for (let i = 0; i < words; i += 1) out.push(own[i % own.length]!);
      return `${out.join(' ')}.`;
    })
    .join('\n');
}

/** Meetily's family defaults when /api/show names no context (ollama/metadata.rs `DEFAULT_CONTEXT_SIZES`). */
const FAMILY_CONTEXT: ReadonlyArray<[string, number]> = [
  ['llama', 4096],
  ['mistral', 8192],
  ['phi', 2048],
  ['qwen', 8192],
  ['gemma', 8192],
  ['codellama', 16384],
  ['deepseek', 16384],
  ['neural-chat', 4096],
];
/** Meetily's last resort (`ULTIMATE_FALLBACK`), also used when /api/show cannot be reached. */
const MEETILY_FALLBACK_CONTEXT = 4000;

/**
 * The context size Meetily believes the model has, from its `/api/show`
 * answer (ollama/metadata.rs `fetch_model_info`): `model_info` key
 * `<details.family>.context_length` (then `.context_size`, `context_length`,
 * `context_size`), else `PARAMETER num_ctx` in the Modelfile, else its family
 * table, else 4000. For llama3.2 straight from Ollama that is the *trained*
 * context, 131072, although Ollama runs `/v1` requests at 4096.
 */
export function meetilyContextSize(show: unknown, model: string): number {
  if (show === null || typeof show !== 'object') {
    const byName = FAMILY_CONTEXT.find(([family]) => model.toLowerCase().includes(family));
    return byName?.[1] ?? MEETILY_FALLBACK_CONTEXT;
  }
  const answer = show as { model_info?: Record<string, unknown>; details?: { family?: unknown }; modelfile?: unknown };
  const family = typeof answer.details?.family === 'string' ? answer.details.family : '';
  for (const key of [`${family}.context_length`, `${family}.context_size`, 'context_length', 'context_size']) {
    const value = answer.model_info?.[key];
    if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  }
  const fromModelfile = typeof answer.modelfile === 'string' ? /PARAMETER\s+num_ctx\s+(\d+)/.exec(answer.modelfile)?.[1] : undefined;
  if (fromModelfile !== undefined) return Number(fromModelfile);
  const byFamily = FAMILY_CONTEXT.find(([name]) => (family || model).toLowerCase().includes(name));
  return byFamily?.[1] ?? MEETILY_FALLBACK_CONTEXT;
}

/** `resolve_llm` (summary/service.rs): the token threshold Meetily summarizes with, 300 below the context. */
export const meetilyTokenThreshold = (contextSize: number): number => Math.max(0, contextSize - 300);

export function emptyCounts(): RequestCounts {
  return { sent: 0, answered: 0, failed: 0, byRoute: {}, failures: [] };
}

/** Meetily's HTTP calls to its Ollama endpoint, counted. */
export class OllamaEndpoint {
  constructor(
    private readonly baseUrl: string,
    readonly counts: RequestCounts,
  ) {}

  /** One request; the parsed JSON answer, or null (counted as failed) on any error. */
  async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const route = `${method} ${path}`;
    this.counts.sent += 1;
    this.counts.byRoute[route] = (this.counts.byRoute[route] ?? 0) + 1;
    try {
      const res = await fetch(`${this.baseUrl}${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
        signal: AbortSignal.timeout(300_000),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
      const json = JSON.parse(text) as unknown;
      this.counts.answered += 1;
      return json;
    } catch (error) {
      this.counts.failed += 1;
      this.counts.failures.push(`${route}: ${error instanceof Error ? error.message : String(error)}`);
      return null;
    }
  }

  /** `generate_summary` for Ollama: one non-streaming chat completion; its text, or null. */
  async complete(model: string, system: string, user: string): Promise<string | null> {
    const answer = (await this.call('POST', '/v1/chat/completions', {
      model,
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: user },
      ],
      stream: false,
      // Meetily asks Ollama not to think (and retries without the field if the server refuses it).
      reasoning_effort: 'none',
    })) as { choices?: Array<{ message?: { content?: unknown } }> } | null;
    const content = answer?.choices?.[0]?.message?.content;
    if (typeof content === 'string' && content.trim() !== '') return content;
    if (answer !== null) {
      // Answered, but nothing usable: Meetily treats that as a failed chunk.
      this.counts.answered -= 1;
      this.counts.failed += 1;
      this.counts.failures.push('POST /v1/chat/completions: answer without content');
    }
    return null;
  }
}

export interface SummaryResult {
  markdown: string | null;
  requests: number;
}

/** `generate_meeting_summary` for Ollama (see the module comment). */
export async function summarizeTranscript(endpoint: OllamaEndpoint, model: string, transcript: string, threshold: number, onFirstAnswer?: () => void): Promise<SummaryResult> {
  let requests = 0;
  const answered = endpoint.counts.answered;
  const complete = async (system: string, user: string) => {
    const text = await endpoint.complete(model, system, user);
    if (endpoint.counts.answered > answered) onFirstAnswer?.();
    return text;
  };
  let content = transcript;
  if (roughTokenCount(transcript) >= threshold) {
    const summaries: string[] = [];
    for (const chunk of chunkText(transcript, Math.max(1, threshold - 300), 100)) {
      requests += 1;
      const summary = await complete(CHUNK_SYSTEM, chunkUserPrompt(chunk));
      if (summary === null) return { markdown: null, requests };
      summaries.push(summary);
    }
    if (summaries.length === 1) content = summaries[0]!;
    else {
      requests += 1;
      const combined = await complete(COMBINE_SYSTEM, combineUserPrompt(summaries));
      if (combined === null) return { markdown: null, requests };
      content = combined;
    }
  }
  requests += 1;
  const report = await complete(FINAL_SYSTEM, finalUserPrompt(content, new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')));
  return { markdown: report, requests };
}
