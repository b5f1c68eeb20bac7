/**
 * Config section `proxy`: the Ollama-compatible proxy Meetily points at
 * (docs/proxy.md). It forwards to the Ollama server of `models.upstream`, the
 * one the governor watches: one setting, so the two can never disagree.
 * `bodyLimitBytes`, the upstream retry/timeout settings, `openAiChat` and
 * `advertiseContext` are hot-reloadable; the listen address needs a restart.
 */
import { z } from 'zod';
import { isLoopbackHost, parseListen } from '../proxy/listen.js';
import { bytes, duration } from '../schemaTypes.js';

export const proxySchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Start the proxy with `memtide run` (`memtide proxy` always starts it).'),
    listen: z
      .string()
      .superRefine((text, ctx) => {
        const parsed = parseListen(text);
        if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
      })
      .default('127.0.0.1:11435')
      .describe('HOST:PORT the proxy listens on; point Meetily\'s Ollama endpoint at it. Loopback unless allowRemote.'),
    bodyLimitBytes: bytes('Largest model request body read for admission (a transcript chunk, or base64 images); 413 past it.').prefault('32MiB'),
    allowRemote: z
      .boolean()
      .default(false)
      .describe('Allow a listen address beyond loopback; then every request needs the bearer token (server.tokenFile).'),
    upstreamRetries: z
      .number()
      .int()
      .min(0)
      .max(10)
      .default(3)
      .describe('Retries of a request whose connection to models.upstream failed before anything was sent (Ollama down or restarting); then 502.'),
    retryBackoffMs: duration('Wait before the first retry of an unreachable upstream; doubles at each retry.').prefault(100),
    upstreamTimeoutMs: duration(
      'Longest silence of the upstream (before its answer starts, or between two chunks) before the request is cancelled with 504; 0 waits forever. A non-streamed answer starts only when it is complete.',
    ).prefault('10m'),
    openAiChat: z
      .enum(['translate', 'forward'])
      .default('translate')
      .describe(
        "POST /v1/chat/completions (Meetily's only model request): translate: sent to Ollama as /api/chat (and its answer translated back), so the governor sizes num_ctx and keep_alive, which Ollama's OpenAI layer ignores (it runs every /v1 request at models.serverContextLength and silently truncates longer prompts); requests it cannot translate exactly (n > 1, logprobs, unknown content parts) are forwarded as they are. forward: always pass /v1 through byte for byte.",
      ),
    advertiseContext: z
      .boolean()
      .default(true)
      .describe(
        "Rewrite the context length in /api/show answers (model_info[\"<arch>.context_length\"]) to the one the model really runs at minus models.answerReserveTokens (the trained value stays as memtide.trained_context_length). Meetily cuts transcripts to that size, so its chunks then fit instead of being truncated. With openAiChat: forward, that is models.serverContextLength. Needs the governor; off in observe-only mode.",
      ),
  })
  .superRefine((proxy, ctx) => {
    const parsed = parseListen(proxy.listen);
    if (typeof parsed !== 'string' && !isLoopbackHost(parsed.host) && !proxy.allowRemote) {
      ctx.addIssue({
        code: 'custom',
        path: ['listen'],
        message: `${parsed.host} is not a loopback address: set proxy.allowRemote: true to listen there (every client then needs the token)`,
      });
    }
  })
  .describe('Ollama-compatible proxy: listen address, body limit, remote access, upstream retries and timeout, /v1 chat translation, /api/show context.')
  .prefault({});
export type ProxyConfig = z.output<typeof proxySchema>;
