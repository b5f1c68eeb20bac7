/**
 * Audio from the runner without holding the file in page memory (seed 8.3).
 *
 * The anti-pattern is `fetch(url) -> blob() -> URL.createObjectURL(blob)`:
 * an hour of 48 kHz stereo WAV is 660 MB in the page before a second plays.
 * Pointing an `<audio>` element at the URL instead lets the browser's media
 * stack fetch what it plays with HTTP Range requests (the server answers
 * 206 Partial Content) and keep only a small buffer around the play head;
 * seeking fetches from the new position.
 *
 * `createRangeAudio` makes such an element; `release` takes it apart
 * properly (pause, drop the source, `load()` so the media stack frees its
 * buffers and closes the connection, remove listeners and the node).
 */

export interface RangeAudioOptions {
  /** `none` (default): nothing is fetched until play; `metadata`: only the header. */
  preload?: 'none' | 'metadata';
  /** Add the element to this parent (e.g. to show native controls). */
  parent?: HTMLElement;
  /** Show the browser's controls (default: true when a parent is given). */
  controls?: boolean;
  /** Accessible name of the player. */
  label?: string;
}

export interface RangeAudio {
  readonly element: HTMLAudioElement;
  play(): Promise<void>;
  pause(): void;
  /** Seeks to `seconds` (the browser requests the bytes from there with a Range header). */
  seek(seconds: number): void;
  /** Listens on the element; removed automatically by `release`. */
  on<K extends keyof HTMLMediaElementEventMap>(type: K, listener: (event: HTMLMediaElementEventMap[K]) => void): void;
  /** Stops playback, frees the media buffers and the connection, removes the element. Idempotent. */
  release(): void;
  readonly released: boolean;
}

export class RangeAudioError extends Error {
  override readonly name = 'RangeAudioError';
  readonly code = 'MEMTIDE_ERR_RANGE_AUDIO';
}

export function createRangeAudio(src: string, options: RangeAudioOptions = {}, doc: Document = document): RangeAudio {
  if (src.startsWith('blob:') || src.startsWith('data:')) {
    throw new RangeAudioError(`createRangeAudio wants the server URL of the audio, not a ${src.slice(0, 5)} URL that holds it in memory`);
  }
  const element = doc.createElement('audio');
  element.preload = options.preload ?? 'none';
  element.controls = options.controls ?? options.parent !== undefined;
  if (options.label) element.setAttribute('aria-label', options.label);
  element.src = src;
  options.parent?.appendChild(element);
  const listeners: Array<[string, EventListener]> = [];
  let released = false;

  return {
    element,
    play: () => (released ? Promise.reject(new RangeAudioError('this RangeAudio was released')) : element.play()),
    pause: () => element.pause(),
    seek(seconds) {
      if (!released && Number.isFinite(seconds)) element.currentTime = Math.max(0, seconds);
    },
    on(type, listener) {
      if (released) return;
      element.addEventListener(type, listener as EventListener);
      listeners.push([String(type), listener as EventListener]);
    },
    release() {
      if (released) return;
      released = true;
      element.pause();
      for (const [type, listener] of listeners) element.removeEventListener(type, listener);
      listeners.length = 0;
      element.removeAttribute('src');
      element.load(); // with no source: aborts the fetch and drops the decoded buffers
      element.remove();
    },
    get released() {
      return released;
    },
  };
}

export interface RangeSupport {
  /** The server answered 206 to `Range: bytes=0-0`. */
  ranges: boolean;
  status: number;
  /** Whole size from `Content-Range`, when given. */
  totalBytes: number | null;
  contentType: string | null;
}

/**
 * Asks the server for the first byte only and reports whether it serves
 * ranges. Reads at most that byte: the body of a server that ignores the
 * Range header (200 with the whole file) is cancelled unread.
 */
export async function checkRangeSupport(url: string, fetchImpl: typeof fetch = fetch): Promise<RangeSupport> {
  const controller = new AbortController();
  const response = await fetchImpl(url, { headers: { range: 'bytes=0-0' }, signal: controller.signal, credentials: 'same-origin' });
  const total = /\/(\d+)\s*$/.exec(response.headers.get('content-range') ?? '')?.[1];
  const support: RangeSupport = {
    ranges: response.status === 206,
    status: response.status,
    totalBytes: total === undefined ? null : Number(total),
    contentType: response.headers.get('content-type'),
  };
  await response.body?.cancel().catch(() => undefined);
  controller.abort();
  return support;
}
