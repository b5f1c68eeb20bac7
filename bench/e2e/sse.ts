/**
 * A minimal server-sent-events client (Node's http, no dependency): used by
 * the dashboard viewer (which keeps memtide's `/api/events` open for the whole
 * run) and by the simulated Meetily, which follows memtide's pressure level
 * over the same feed.
 */
import http from 'node:http';

export interface SseConnection {
  /** Resolves once the response headers arrived (status 200). */
  ready: Promise<void>;
  /** Events received so far, by event name. */
  counts: Map<string, number>;
  /** Rejects/resolves when the server ends the stream or the connection fails. */
  ended: Promise<void>;
  close(): void;
}

export function openSse(url: string, onEvent: (event: string, data: string) => void): SseConnection {
  const counts = new Map<string, number>();
  let closed = false;
  let resolveReady!: () => void;
  let rejectReady!: (error: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  let resolveEnded!: () => void;
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  const request = http.get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
    if (res.statusCode !== 200) {
      rejectReady(new Error(`${url}: HTTP ${res.statusCode}`));
      res.resume();
      resolveEnded();
      return;
    }
    resolveReady();
    res.setEncoding('utf8');
    let buffer = '';
    res.on('data', (text: string) => {
      buffer += text;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of frame.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
        }
        if (data.length === 0) continue; // a comment (": memtide") or keep-alive
        counts.set(event, (counts.get(event) ?? 0) + 1);
        onEvent(event, data.join('\n'));
      }
    });
    res.on('end', () => resolveEnded());
    res.on('error', () => resolveEnded());
  });
  request.on('error', (error) => {
    if (!closed) rejectReady(error);
    resolveEnded();
  });
  ready.catch(() => undefined);
  return {
    ready,
    counts,
    ended,
    close() {
      closed = true;
      request.destroy();
    },
  };
}
