/**
 * The bearer token for state-changing calls.
 *
 * `memtide run` prints the dashboard URL with the token in the fragment
 * (`http://127.0.0.1:7071/#token=...`). A fragment is never sent to a server
 * (not in the request line, not in logs, not in a Referer), so the token only
 * exists in this tab: the page moves it to sessionStorage (gone when the tab
 * closes, never shared with other tabs or sites) and removes it from the
 * address bar and the history entry at once. It can also be pasted in the
 * settings view (e.g. from the token file, mode 0600).
 */

const KEY = 'memtide.token';
let memoryToken: string | null = null;

function storage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: keep the token in memory for this page only
  }
}

/** Takes `#token=...` out of the URL (keeping any other fragment part) and stores it. */
export function adoptTokenFromFragment(): void {
  const parts: string[] = location.hash.replace(/^#/, '').split('&');
  const found = parts.find((part) => part.startsWith('token='));
  if (found === undefined) return;
  let token = '';
  try {
    token = decodeURIComponent(found.slice('token='.length)).trim();
  } catch {
    // malformed escape: ignore the token, still remove it from the URL
  }
  if (token) setToken(token);
  const rest = parts.filter((part) => part && !part.startsWith('token=')).join('&');
  history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
}

export function getToken(): string | null {
  return storage()?.getItem(KEY) ?? memoryToken;
}

export function setToken(token: string): void {
  memoryToken = token;
  storage()?.setItem(KEY, token);
}

export function clearToken(): void {
  memoryToken = null;
  storage()?.removeItem(KEY);
}
