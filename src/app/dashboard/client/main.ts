/**
 * The dashboard's entry point: takes the token out of the URL, wires the
 * tabs (Live, History, Settings; `#history` etc. link to them), the pressure
 * badge, and the footer (the page's own memory, measured with the kit's
 * sampler; the history caches' hit rate). Idle time trims the caches of a
 * view that is not shown.
 */
import { createIdleCleanup } from '../../../browser/idleCleanup.js';
import type { PressureEvent } from '../../../browser/liveTypes.js';
import { startMemoryReporter } from '../../../browser/memorySampler.js';
import { byId, setText } from './dom.js';
import { formatBytes } from './format.js';
import { createHistoryView, historyCache, pageCache, type HistoryView } from './history.js';
import { createLiveView } from './live.js';
import { createSettingsView, type SettingsView } from './settings.js';
import { adoptTokenFromFragment, getToken } from './token.js';

type ViewName = 'live' | 'history' | 'settings';
const VIEWS: ViewName[] = ['live', 'history', 'settings'];

adoptTokenFromFragment();
byId('boot').remove();

// --- pressure badge --------------------------------------------------------------------------
const badge = byId('level');
const onPressure = (event: PressureEvent) => {
  setText(badge, event.level);
  badge.className = `badge level-${event.level}`;
  badge.dataset.level = event.level;
  badge.title = event.reasons.join('\n');
  document.title = event.level === 'low' ? 'memtide' : `memtide · ${event.level} pressure`;
};

// --- footer --------------------------------------------------------------------------------------
const tokenState = byId('token-state');
const renderTokenState = () => setText(tokenState, getToken() ? 'token: present (actions allowed)' : 'read-only: no token in this tab');
const cacheStats = byId('cache-stats');
const renderCacheStats = () => {
  const a = historyCache.stats();
  const b = pageCache.stats();
  const lookups = a.hits + a.misses + b.hits + b.misses;
  if (lookups === 0) return setText(cacheStats, '');
  setText(cacheStats, `history cache: ${Math.round((100 * (a.hits + b.hits)) / lookups)}% hits, ${formatBytes(a.bytes + b.bytes)} of ${formatBytes(a.maxBytes + b.maxBytes)}`);
};
const pageMemory = byId('page-memory');
// The dashboard measures itself but does not report as `frontend`: that component is Meetily's webview.
const reporter = startMemoryReporter({
  endpoint: null,
  intervalMs: 10_000,
  onSample: (sample) => setText(pageMemory, `page memory: ${formatBytes(sample.bytes)} (${sample.source})`),
});
setTimeout(() => {
  if (!reporter.supported) setText(pageMemory, 'page memory: this browser does not expose it');
}, 3000);

// --- views ---------------------------------------------------------------------------------------
const live = createLiveView(byId('view-live'), onPressure);
let history: HistoryView | null = null;
let settings: SettingsView | null = null;
let current: ViewName = 'live';

function parseHash(): { view: ViewName; sinceMs?: number; untilMs?: number } {
  const parts: string[] = location.hash.replace(/^#/, '').split('&');
  const view = VIEWS.find((v) => v === parts[0]) ?? 'live';
  const number = (name: string) => {
    const raw = parts.find((p: string) => p.startsWith(`${name}=`))?.slice(name.length + 1);
    return raw && /^\d+$/.test(raw) ? Number(raw) : undefined;
  };
  const sinceMs = number('since');
  const untilMs = number('until');
  return { view, ...(sinceMs !== undefined ? { sinceMs } : {}), ...(untilMs !== undefined ? { untilMs } : {}) };
}

function show(view: ViewName, focus = false): void {
  current = view;
  for (const name of VIEWS) {
    const tab = byId(`tab-${name}`);
    const panel = byId(`view-${name}`);
    const selected = name === view;
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    panel.hidden = !selected;
    if (selected && focus) tab.focus();
  }
  live.setVisible(view === 'live');
  if (view === 'history') {
    history ??= createHistoryView(byId('view-history'), renderCacheStats);
    const { sinceMs, untilMs } = parseHash();
    if (sinceMs !== undefined && untilMs !== undefined && untilMs > sinceMs) history.setRange(sinceMs, untilMs);
    else history.show();
  }
  if (view === 'settings') {
    settings ??= createSettingsView(byId('view-settings'), renderTokenState);
    settings.show();
  }
  const hash = view === 'live' ? '' : `#${view}`;
  if (location.hash.split('&')[0] !== hash && !(view === 'live' && location.hash === '')) history_replace(hash);
}

function history_replace(hash: string): void {
  window.history.replaceState(window.history.state, '', `${location.pathname}${location.search}${hash}`);
}

for (const name of VIEWS) {
  const tab = byId(`tab-${name}`);
  tab.addEventListener('click', () => show(name));
  // Tabs pattern (WAI-ARIA): arrows move between tabs, Home/End to the ends.
  tab.addEventListener('keydown', (event: KeyboardEvent) => {
    const i = VIEWS.indexOf(name);
    const next =
      event.key === 'ArrowRight' ? VIEWS[(i + 1) % VIEWS.length] : event.key === 'ArrowLeft' ? VIEWS[(i + VIEWS.length - 1) % VIEWS.length] : event.key === 'Home' ? VIEWS[0] : event.key === 'End' ? VIEWS[VIEWS.length - 1] : undefined;
    if (!next) return;
    event.preventDefault();
    show(next, true);
  });
}
window.addEventListener('hashchange', () => {
  const { view } = parseHash();
  if (view !== current || view === 'history') show(view);
});

// --- idle cleanup ---------------------------------------------------------------------------------
const idle = createIdleCleanup({ intervalMs: 60_000 });
idle.register('history caches', () => {
  historyCache.purgeStale();
  pageCache.purgeStale();
  // Away from the history view, keep at most a quarter of the budget for going back.
  if (current !== 'history') {
    historyCache.trim(historyCache.maxBytes / 4);
    pageCache.trim(pageCache.maxBytes / 4);
  }
  renderCacheStats();
});

renderTokenState();
show(parseHash().view);

window.addEventListener('pagehide', () => {
  reporter.stop();
  idle.dispose();
});
