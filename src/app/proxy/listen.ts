/** `host:port` listen addresses and the loopback test shared by the proxy, its config and its CLI. */

export interface ListenAddress {
  host: string;
  port: number;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/i;

export const isLoopbackHost = (host: string): boolean => LOOPBACK.test(host.replace(/^\[|\]$/g, ''));

/**
 * `127.0.0.1:11435`, `[::1]:11435`, `localhost:0` → `{ host, port }`;
 * returns the reason as a string when the text is not a listen address.
 */
export function parseListen(text: string): ListenAddress | string {
  const match = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(text.trim());
  if (!match?.[1] || match[2] === undefined) return `expected HOST:PORT (e.g. 127.0.0.1:11435 or [::1]:11435), got "${text}"`;
  const port = Number(match[2]);
  if (port > 65535) return `port ${port} is out of range (0-65535)`;
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

/** An http(s) base URL without query or fragment; returns the reason as a string otherwise. */
export function parseUpstream(text: string): URL | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `not a URL: "${text}" (e.g. http://127.0.0.1:11434)`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `must be http:// or https://, got "${url.protocol}"`;
  if (url.search || url.hash) return 'must not have a query or fragment';
  return url;
}
