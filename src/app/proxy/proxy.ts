/**
 * The Ollama-compatible proxy: Meetily (or any Ollama client) points at it
 * instead of Ollama. Every request is forwarded to the upstream Ollama and
 * its answer streamed back unchanged; model-using requests first ask the
 * governor (`ModelGovernor.admit`), get their body rewritten with its
 * admission (model tag, `num_ctx`, `keep_alive`, `use_mmap`) where the API
 * allows, and tell the governor when they end (`release`, exactly once).
 *
 * Optional requests (`X-Memtide-Priority: optional`, src/app/proxy/priority.ts)
 * are answered 503 + Retry-After while the coordinator has live summaries
 * disabled (`optionalDeferral`, by default the governor's).
 *
 * Meetily's `POST /v1/chat/completions` is translated to `/api/chat` when
 * `openAiChat` is "translate" (src/app/proxy/openAiChatRequest.ts,
 * openAiChatResponse.ts): admitted as a `chat` request, so the governor sizes
 * its `num_ctx` and `keep_alive`, which Ollama's OpenAI layer has no place
 * for; the answer is translated back. `POST /api/show` answers advertise the
 * context the model really runs at (`advertiseContext`,
 * src/app/proxy/showContext.ts). See docs/proxy.md, "Meetily's /v1 requests".
 *
 * Upstream retries and timeouts (`upstreamRetries`, `retryBackoffMs`,
 * `upstreamTimeoutMs`) are live settings too: each request is forwarded with
 * the latest ones (src/app/proxy/forward.ts, docs/reliability.md).
 *
 * Security: binds loopback by default and refuses another address unless
 * `allowRemote`; on loopback, requests whose Host header is missing or not a
 * loopback name are refused (DNS rebinding), and no token is needed (Meetily
 * cannot send one); beyond loopback every request needs the bearer token.
 * Requests Node's HTTP parser refuses get the same JSON errors as everything
 * else the proxy answers, never Node's bare "400 Bad Request".
 */
import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Observable, Subscription } from 'rxjs';
import { silentLogger, type Logger } from '../../sinks/logger.js';
import { GovernorError, type Admission, type ContextRun, type ModelEndpoint, type ModelGovernor, type OptionalDeferral } from '../../streams/governorApi.js';
import { HttpError, answerUnparsable, readBody } from '../http.js';
import { hasToken } from '../token.js';
import { rawProxyError, sendProxyError } from './errorReply.js';
import { forward, type ForwardOptions, type ForwardOutcome, type UpstreamPolicy } from './forward.js';
import { parseJsonBody } from './jsonBody.js';
import { isLoopbackHost, parseUpstream, type ListenAddress } from './listen.js';
import { ModelRequestError, admissionRequestOf, bodyChangesOf, isOpenAiEndpoint, modelEndpointOf, rewriteBody, rewriteBodyBytes } from './modelRequest.js';
import { translateChatRequest, type Untranslatable } from './openAiChatRequest.js';
import { chatResponseTransform } from './openAiChatResponse.js';
import { deferredReply, priorityOf } from './priority.js';
import { showContextTransform, showModelOf } from './showContext.js';

/**
 * Settings that may change while the proxy runs (the rest needs a restart).
 * The upstream policy's fields (`proxy.upstreamRetries`, `proxy.retryBackoffMs`,
 * `proxy.upstreamTimeoutMs`) take forward.ts's defaults when absent.
 */
export interface ProxySettings extends Partial<Pick<UpstreamPolicy, 'upstreamRetries' | 'retryBackoffMs' | 'upstreamTimeoutMs'>> {
  /** Largest model request body read for admission (413 past it). */
  bodyLimitBytes: number;
  /** false: inject `options.use_mmap: false` on native endpoints. */
  useMmap?: boolean;
  /**
   * `/v1/chat/completions`: "translate" to `/api/chat` (num_ctx and keep_alive
   * injected), or "forward" as it is. Absent: "forward" (a proxy started by
   * hand changes nothing it was not asked to; the config's default is "translate").
   */
  openAiChat?: OpenAiChatMode;
  /** Rewrite `/api/show`'s context length to the one the model runs at (needs a governor). Absent: false. */
  advertiseContext?: boolean;
}

export type OpenAiChatMode = 'translate' | 'forward';

/** What happened to `/v1/chat/completions` requests with `openAiChat: "translate"`. */
export interface TranslationCounts {
  translated: number;
  /** Forwarded untranslated, by reason code (src/app/proxy/openAiChatRequest.ts `Untranslatable`). */
  forwarded: Partial<Record<Untranslatable['code'], number>>;
}

export interface StartProxyOptions {
  listen: ListenAddress;
  /** Base URL of the real Ollama, e.g. http://127.0.0.1:11434. */
  upstream: string | URL;
  /** Without one the proxy is a transparent pass-through. */
  governor?: ModelGovernor;
  config?: ProxySettings;
  /** Live settings (hot reload); the latest value applies to the next request. */
  config$?: Observable<ProxySettings>;
  logger?: Logger;
  /** Allow a non-loopback listen address (then every request needs `token`). */
  allowRemote?: boolean;
  token?: string;
  /** Why optional requests are deferred now (null: they pass); default the governor's `optionalDeferral`. */
  optionalDeferral?: () => OptionalDeferral | null;
}

export interface ProxyHandle {
  readonly url: string;
  /** Requests being forwarded now. */
  inFlight(): number;
  /** `/v1/chat/completions` requests translated, and those forwarded as they were (why). */
  translations(): TranslationCounts;
  /** Stops listening, aborts in-flight requests upstream (releasing their admissions). */
  close(): Promise<void>;
}

export class ProxyError extends Error {
  readonly code = 'MEMTIDE_ERR_PROXY';
  constructor(message: string) {
    super(message);
    this.name = 'ProxyError';
  }
}

const DEFAULT_SETTINGS: ProxySettings = { bodyLimitBytes: 16 * 1024 * 1024 };

/** Requests from a path under /v1/ get OpenAI's error shape. */
const isOpenAiTarget = (target: string | undefined): boolean => target?.startsWith('/v1/') ?? false;

function hostHeaderIsLoopback(header: string | undefined): boolean {
  if (!header) return false;
  const match = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(header);
  return match?.[1] !== undefined && isLoopbackHost(match[1]);
}

/** `x-memtide-*` headers saying what the governor changed (only when it changed something). */
function admissionHeaders(body: Record<string, unknown>, rewritten: Record<string, unknown> | null, endpoint: ModelEndpoint, translated: boolean): Array<[string, string]> {
  const headers: Array<[string, string]> = translated ? [['X-Memtide-Translated', 'api/chat']] : [];
  if (!rewritten) return headers;
  if (rewritten.model !== body.model) headers.push(['X-Memtide-Model', String(rewritten.model)]);
  if (!isOpenAiEndpoint(endpoint)) {
    const options = rewritten.options as Record<string, unknown> | undefined;
    if (options?.num_ctx !== undefined) headers.push(['X-Memtide-Num-Ctx', String(options.num_ctx)]);
    if (options?.num_batch !== undefined) headers.push(['X-Memtide-Num-Batch', String(options.num_batch)]);
    if (rewritten.keep_alive !== undefined) headers.push(['X-Memtide-Keep-Alive', String(rewritten.keep_alive)]);
  }
  return headers;
}

export async function startProxy(options: StartProxyOptions): Promise<ProxyHandle> {
  const logger = options.logger ?? silentLogger;
  const { governor } = options;
  const upstream = parseUpstream(String(options.upstream));
  if (typeof upstream === 'string') throw new ProxyError(`upstream: ${upstream}`);
  const loopbackOnly = isLoopbackHost(options.listen.host);
  if (!loopbackOnly && !options.allowRemote) {
    throw new ProxyError(`listen address ${options.listen.host} is not loopback: that needs proxy.allowRemote: true (and then every client needs the token)`);
  }
  if (!loopbackOnly && !options.token) throw new ProxyError('a non-loopback proxy needs a token (every request must carry it)');

  let settings: ProxySettings = { ...DEFAULT_SETTINGS, ...options.config };
  let subscription: Subscription | undefined;
  if (options.config$) {
    subscription = options.config$.subscribe({
      next: (next) => (settings = { ...DEFAULT_SETTINGS, ...next }),
      error: (error: unknown) => logger.error(`proxy config stream failed, keeping the last settings: ${String(error)}`),
    });
  }

  const agent =
    upstream.protocol === 'https:'
      ? new HttpsAgent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 64, scheduling: 'lifo' })
      : new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 64, scheduling: 'lifo' });
  let active = 0;
  const translations: TranslationCounts = { translated: 0, forwarded: {} };

  /** Forwards with the latest settings (hot reload applies to the next request), counting it in flight. */
  const send = (
    req: IncomingMessage,
    res: ServerResponse,
    openAi: boolean,
    extra: Pick<ForwardOptions, 'body' | 'responseHeaders' | 'upstreamPath' | 'transformResponse'> = {},
    then?: (outcome: ForwardOutcome) => void,
  ): void => {
    active += 1;
    forward(req, res, {
      upstream,
      agent,
      openAi,
      ...extra,
      policy: settings,
      onRetry: (notice) => logger.debug(`proxy: ${req.method} ${req.url}: upstream unreachable (${notice.error}), retry ${notice.attempt} in ${notice.delayMs} ms`),
      onDone: (outcome) => {
        active -= 1;
        then?.(outcome);
      },
    });
  };

  /** A model request: read, parse, (translate,) admit, rewrite, forward, release. */
  const handleModel = async (req: IncomingMessage, res: ServerResponse, clientEndpoint: ModelEndpoint, gov: ModelGovernor): Promise<void> => {
    const openAi = isOpenAiEndpoint(clientEndpoint);
    let endpoint = clientEndpoint;
    let bytes: Buffer;
    try {
      bytes = await readBody(req, settings.bodyLimitBytes);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 400;
      const code = error instanceof HttpError ? error.code : 'MEMTIDE_ERR_BODY';
      sendProxyError(res, { status, message: (error as Error).message, code }, openAi);
      return;
    }
    const parsed = parseJsonBody(bytes);
    if (!parsed.ok) {
      sendProxyError(res, { status: 400, message: `request body is not valid JSON: ${parsed.reason} at byte ${parsed.offset}`, code: 'MEMTIDE_ERR_BAD_JSON', offset: parsed.offset }, openAi);
      return;
    }
    let request: ReturnType<typeof admissionRequestOf>;
    let body = parsed.value;
    /** How a translated request goes upstream and comes back. */
    let translation: Pick<ForwardOptions, 'upstreamPath' | 'transformResponse'> | null = null;
    try {
      const translate = endpoint === 'openai-chat' && settings.openAiChat === 'translate' && admissionRequestOf(body, endpoint) !== null;
      const result = translate ? translateChatRequest(body as Record<string, unknown>, bytes) : null;
      if (result?.translated) {
        // Admitted, rewritten and forwarded as the /api/chat request it now is.
        translations.translated += 1;
        endpoint = 'chat';
        bytes = result.bytes;
        body = result.body;
        const query = req.url?.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
        translation = { upstreamPath: `/api/chat${query}`, transformResponse: chatResponseTransform({ stream: result.stream, includeUsage: result.includeUsage }) };
      } else if (result) {
        translations.forwarded[result.why.code] = (translations.forwarded[result.why.code] ?? 0) + 1;
        logger.debug(`proxy: ${req.method} ${req.url} forwarded to /v1 untranslated: ${result.why.detail}`);
      }
      request = admissionRequestOf(body, endpoint);
    } catch (error) {
      const field = error instanceof ModelRequestError ? error.field : undefined;
      sendProxyError(res, { status: 400, message: (error as Error).message, code: 'MEMTIDE_ERR_BAD_FIELD', ...(field ? { field } : {}) }, openAi);
      return;
    }
    if (!request) {
      // No model named: Ollama answers with its own error.
      send(req, res, openAi, { body: bytes });
      return;
    }

    const abort = new AbortController();
    const onClose = () => abort.abort();
    res.once('close', onClose);
    const started = performance.now();
    let admission: Admission;
    try {
      admission = await gov.admit({ ...request, signal: abort.signal });
    } catch (error) {
      res.off('close', onClose);
      if (abort.signal.aborted) return;
      if (error instanceof GovernorError) {
        logger.info(`proxy: ${request.model} refused (${error.code}): ${error.message}`);
        sendProxyError(
          res,
          {
            status: error.status,
            message: error.message,
            code: error.code,
            ...(error.retryAfterMs !== null ? { retryAfterSeconds: Math.max(1, Math.ceil(error.retryAfterMs / 1000)) } : {}),
          },
          openAi,
        );
        return;
      }
      logger.error(`proxy: admission of ${request.model} failed: ${String(error)}`);
      sendProxyError(res, { status: 500, message: `memtide governor failed: ${(error as Error).message ?? String(error)}`, code: 'MEMTIDE_ERR_GOVERNOR' }, openAi);
      return;
    }
    res.off('close', onClose);

    let released = false;
    const release = (outcome: ForwardOutcome) => {
      if (released) return;
      released = true;
      try {
        admission.release(outcome);
      } catch (error) {
        logger.error(`proxy: release of ${admission.model} threw: ${String(error)}`);
      }
      logger.debug(`proxy: ${req.method} ${req.url} ${request.model}${admission.model !== request.model ? `->${admission.model}` : ''} ${outcome.status ?? '-'} ${outcome.ok ? 'ok' : outcome.error} ${Math.round(performance.now() - started)} ms`);
    };
    if (res.destroyed || abort.signal.aborted) {
      release({ ok: false, error: 'client disconnected before forwarding' });
      return;
    }
    try {
      const json = body as Record<string, unknown>;
      const rewrite = settings.useMmap === false ? { useMmap: false } : {};
      const changes = bodyChangesOf(json, endpoint, admission, rewrite);
      // Spliced into the client's bytes, never re-serialised: numbers and spellings reach Ollama as written.
      const forwarded = changes ? rewriteBodyBytes(bytes, changes) : bytes;
      const responseHeaders = admissionHeaders(json, rewriteBody(json, endpoint, admission, rewrite), endpoint, translation !== null);
      send(req, res, openAi, { body: forwarded, responseHeaders, ...translation }, release);
    } catch (error) {
      release({ ok: false, error: String(error) });
      throw error;
    }
  };

  /** `POST /api/show`: forwarded, its answer's context length rewritten to the one the model runs at. */
  const handleShow = async (req: IncomingMessage, res: ServerResponse, gov: ModelGovernor): Promise<void> => {
    let bytes: Buffer;
    try {
      bytes = await readBody(req, settings.bodyLimitBytes);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 400;
      sendProxyError(res, { status, message: (error as Error).message, code: error instanceof HttpError ? error.code : 'MEMTIDE_ERR_BODY' }, false);
      return;
    }
    const parsed = parseJsonBody(bytes);
    const model = parsed.ok ? showModelOf(parsed.value) : null;
    // Translated /v1 chat runs at the governed num_ctx; forwarded /v1 at the server's default (what Meetily gets).
    const runsAt: ContextRun = settings.openAiChat === 'translate' ? 'governed' : 'server-default';
    send(req, res, false, { body: bytes, ...(model ? { transformResponse: showContextTransform(gov, model, runsAt) } : {}) });
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const pathname = url.split('?', 1)[0] ?? '/';
    const endpoint = modelEndpointOf(req.method, pathname);
    const openAi = endpoint ? isOpenAiEndpoint(endpoint) : pathname.startsWith('/v1/');
    const host = req.headers.host;
    if (loopbackOnly && !hostHeaderIsLoopback(host)) {
      req.resume();
      const message = host === undefined ? 'no Host header: it must be a loopback name' : `host "${host}" is not a loopback name`;
      sendProxyError(res, { status: 403, message, code: 'MEMTIDE_ERR_HOST' }, openAi);
      return;
    }
    if (host === undefined && req.httpVersion === '1.1') {
      req.resume();
      sendProxyError(res, { status: 400, message: 'no Host header (HTTP/1.1 requires one)', code: 'MEMTIDE_ERR_HOST' }, openAi);
      return;
    }
    if (!loopbackOnly) {
      if (!hasToken(req.headers.authorization, options.token ?? '')) {
        req.resume();
        sendProxyError(res, { status: 401, message: 'missing or wrong bearer token', code: 'MEMTIDE_ERR_UNAUTHORIZED' }, openAi);
        return;
      }
      delete req.headers.authorization; // ours, not Ollama's
      const index = req.rawHeaders.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'authorization');
      if (index >= 0) req.rawHeaders.splice(index, 2);
    }
    const priority = priorityOf(req.headers);
    if (typeof priority !== 'string') {
      req.resume();
      sendProxyError(res, { status: 400, message: priority.error, code: 'MEMTIDE_ERR_BAD_HEADER', field: 'X-Memtide-Priority' }, openAi);
      return;
    }
    const deferralOf = options.optionalDeferral ?? (() => governor?.optionalDeferral?.() ?? null);
    const deferral = priority === 'optional' ? deferralOf() : null;
    if (deferral) {
      req.resume();
      logger.info(`proxy: optional ${req.method} ${pathname} deferred: ${deferral.reason}`);
      sendProxyError(res, deferredReply(deferral), openAi);
      return;
    }
    if (req.method === 'POST' && pathname === '/api/show' && governor?.advertisedContext && settings.advertiseContext === true) {
      handleShow(req, res, governor).catch((error: unknown) => {
        logger.error(`proxy: ${req.method} ${pathname} failed: ${String(error)}`);
        sendProxyError(res, { status: 500, message: String(error), code: 'MEMTIDE_ERR_INTERNAL' }, false);
      });
      return;
    }
    if (!endpoint || !governor) {
      send(req, res, openAi);
      return;
    }
    handleModel(req, res, endpoint, governor).catch((error: unknown) => {
      logger.error(`proxy: ${req.method} ${pathname} failed: ${String(error)}`);
      sendProxyError(res, { status: 500, message: String(error), code: 'MEMTIDE_ERR_INTERNAL' }, openAi);
    });
  };

  // requireHostHeader off: Node's own answer to a missing Host is a bare 400; `handle` refuses it in the API's shape.
  const server: Server = createServer({ noDelay: true, requireHostHeader: false }, handle);
  const unparsable = answerUnparsable(server, ({ target, ...reply }) => rawProxyError(reply, isOpenAiTarget(target)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  logger.info(`proxy listening on http://${host}:${address.port} -> ${upstream.origin}${governor ? '' : ' (no governor: pass-through)'}`);

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    inFlight: () => active,
    translations: () => ({ translated: translations.translated, forwarded: { ...translations.forwarded } }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        subscription?.unsubscribe();
        server.close(() => resolve());
        server.closeAllConnections();
        unparsable.destroySockets(); // answered raw; a CONNECT's socket is beyond closeAllConnections
        agent.destroy();
      });
      return closing;
    },
  };
}
