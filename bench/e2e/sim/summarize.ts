/**
 * Meetily's summary flow (frontend/src-tauri/src/summary/processor.rs),
 * against whatever URL it is given as its Ollama endpoint:
 *
 * - tokens are estimated as characters x 0.35 (`rough_token_count`);
 * - a transcript at or above the threshold (the model's context) is cut into
 *   chunks of threshold - 300 tokens with 100 tokens of overlap at sentence
 *   or word boundaries (`chunk_text`), each summarized by one request, back
 *   to back; more than one chunk summary is combined by one more request;
 * - the final report is one more request (an English transcript needs no
 *   normalization pass);
 * - every request is `POST /v1/chat/completions`, non-streaming, with no
 *   `keep_alive` and no `options` (Meetily never sends them).
 *
 * The random-weight whisper model writes a few words per chunk where real
 * speech gives ~150 words a minute; so the prompts have the size a real
 * meeting's would, each transcript line is repeated (its own words) up to
 * that length before the rule runs. Requests are counted: a request is lost
 * when it gets no answer, an HTTP error, or an answer without content.
 */
import type { RequestCounts } from '../protocol.js';

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
    for (const chunk of chunkText(transcript, threshold - 300, 100)) {
      requests += 1;
      const summary = await complete('You are an expert meeting summarizer.', `Provide a concise but comprehensive summary of the following transcript chunk.\n\n<transcript_chunk>\n${chunk}\n</transcript_chunk>`);
      if (summary === null) return { markdown: null, requests };
      summaries.push(summary);
    }
    if (summaries.length === 1) content = summaries[0]!;
    else {
      requests += 1;
      const combined = await complete('You are an expert at synthesizing meeting summaries.', `The following are consecutive summaries of a meeting. Combine them.\n\n<summaries>\n${summaries.join('\n---\n')}\n</summaries>`);
      if (combined === null) return { markdown: null, requests };
      content = combined;
    }
  }
  requests += 1;
  const report = await complete('You are an expert meeting summarizer. Generate a final meeting report by filling in the provided Markdown template.', `<transcript_chunks>\n${content}\n</transcript_chunks>`);
  return { markdown: report, requests };
}
