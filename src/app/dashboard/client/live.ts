/**
 * The live view: the SSE feed (`/api/events`: `sample`, `pressure`, and
 * `alert`, `leak`, `models` where the runner sends them) drawn as charts and
 * panels, plus the polled panels (models, actions). Memory stays flat
 * however long the page is open: points live in ring buffers, panels are
 * maps with a cap, DOM rows are reused by key, and all drawing happens at
 * most once per animation frame.
 */
import type { LiveSample, PressureEvent } from '../../../browser/liveTypes.js';
import { createActionsPanel } from './actionsPanel.js';
import { acknowledgeAlert, actionButton, OPTIMIZATION_LEVELS, pinModel, PRESET_CHOICES, recommendationAction, setLowMemory, setOptimizationLevel, setPreset, unloadModel } from './actions.js';
import { api, ApiError, describeError } from './api.js';
import { LiveChart, PALETTE } from './charts.js';
import { byId, card, h, setText } from './dom.js';
import { formatBytes, formatDuration, formatPercent, formatTime } from './format.js';

/** Points per live chart: 10 minutes at the default 1 s interval. */
export const LIVE_POINTS = 600;
/** Component charts shown at most (a misconfigured rule set could produce many). */
const MAX_COMPONENTS = 12;
const MAX_ALERTS = 50;
const MAX_LEAKS = 20;
const MODELS_POLL_MS = 5000;

interface Recommendation {
  action: string;
  command?: string;
  expectedSavingBytes?: number;
}
interface Alert {
  key: string;
  kind: string;
  severity: 'info' | 'warning' | 'critical';
  status: 'firing' | 'resolved';
  component: string | null;
  atMs: number;
  sinceMs: number;
  title: string;
  message: string;
  recommendations: Recommendation[];
  acknowledgedAtMs?: number | null;
}
interface LeakEvent {
  kind: 'leak' | 'clear';
  component: string;
  detectedAtMs?: number;
  slopeBytesPerHour?: number;
  /** From an alert: its title, shown instead of the numbers. */
  title?: string;
  confidence?: number;
  projectedExhaustionMs?: number | null;
}
interface LoadedModel {
  name: string;
  sizeBytes: number;
  sizeVramBytes: number;
  contextLength: number | null;
  inFlight: number;
  idleSinceMs: number | null;
  pinned: boolean;
}

interface ComponentView {
  chart: LiveChart;
  rss: HTMLElement;
  pss: HTMLElement;
  procs: HTMLElement;
}

const SEVERITY_RANK: Record<string, number> = { critical: 0, warning: 1, info: 2 };

function dl(entries: Array<[string, HTMLElement]>): HTMLElement {
  return h('dl', { class: 'stats' }, ...entries.map(([label, value]) => h('div', {}, h('dt', { text: label }), h('dd', {}, value))));
}

export interface LiveView {
  /** Charts' data point counts (for tests and the footer). */
  readonly pointCount: number;
  setVisible(visible: boolean): void;
  dispose(): void;
}

export function createLiveView(root: HTMLElement, onPressure: (event: PressureEvent) => void): LiveView {
  // --- layout -------------------------------------------------------------------------------
  const systemStats = { available: h('span'), used: h('span'), total: h('span'), swap: h('span'), psi: h('span') };
  const system = card('System memory', 'system-card', h('span', { class: 'sub', id: 'system-updated' }));
  system.body.append(
    dl([
      ['Available', systemStats.available],
      ['Used', systemStats.used],
      ['Total', systemStats.total],
      ['Swap used', systemStats.swap],
      ['PSI some/full', systemStats.psi],
    ]),
  );
  const systemChart = new LiveChart(
    system.body,
    {
      label: 'System memory over the last samples: used and available bytes',
      height: 220,
      series: [
        { label: 'Used', stroke: '#1d5fbf', fill: 'rgba(29,95,191,0.10)' },
        { label: 'Available', stroke: '#2b8a3e' },
      ],
      syncKey: 'live',
    },
    LIVE_POINTS,
  );
  systemChart.element.id = 'system-chart';

  const componentsGrid = h('div', { class: 'grid cards', id: 'component-charts' });
  const components = card('Components', 'components-card', h('span', { class: 'sub', text: 'RSS and PSS per component' }));
  components.body.append(componentsGrid);

  const alertsList = h('ul', { class: 'alerts', id: 'alerts-list', 'aria-live': 'polite' });
  const alertsEmpty = h('p', { class: 'empty', text: 'No active alerts.' });
  const alertsNote = h('p', { class: 'unavailable', hidden: true });
  const alerts = card('Alerts', 'alerts-card');
  alerts.body.append(alertsList, alertsEmpty, alertsNote);

  const presetSelect = h('select', { id: 'preset-select' }, ...PRESET_CHOICES.map((p) => h('option', { value: p, text: p })));
  const levelSelect = h('select', { id: 'level-select' }, ...OPTIMIZATION_LEVELS.map((l) => h('option', { value: l, text: l })));
  const quick = card('Quick actions', 'actions-card');
  quick.body.append(
    h(
      'div',
      { class: 'controls' },
      h('label', { for: 'preset-select' }, 'Pressure preset', presetSelect),
      actionButton('Switch preset', () => setPreset(presetSelect.value)),
    ),
    h(
      'div',
      { class: 'controls' },
      h('label', { for: 'level-select' }, 'Optimization level', levelSelect),
      actionButton('Set level', () => setOptimizationLevel(levelSelect.value)),
    ),
    h(
      'div',
      { class: 'controls' },
      actionButton('Low-memory mode on', () => setLowMemory(true), 'btn'),
      actionButton('Low-memory mode off', () => setLowMemory(false), 'btn secondary'),
    ),
  );

  const modelsBody = h('tbody');
  const modelsTable = h(
    'table',
    { id: 'models-table' },
    h('caption', { class: 'visually-hidden', text: 'Models loaded in Ollama' }),
    h('thead', {}, h('tr', {}, ...['Model', 'RAM', 'Idle', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
    modelsBody,
  );
  const modelsNote = h('p', { class: 'empty', text: 'Waiting for the model list…' });
  const modelsSub = h('span', { class: 'sub', id: 'models-budget' });
  const models = card('Loaded models', 'models-card', modelsSub);
  models.body.append(h('div', { class: 'table-wrap' }, modelsTable), modelsNote);

  const leaksList = h('ul', { class: 'alerts', id: 'leaks-list' });
  const leaksEmpty = h('p', { class: 'empty', text: 'No component is growing like a leak.' });
  const leaks = card('Leak suspects', 'leaks-card');
  leaks.body.append(leaksList, leaksEmpty);

  // What the coordinator and the governor did: polled on its own, refreshed soon after a pressure change.
  const actionsPanel = createActionsPanel();

  root.append(
    h(
      'div',
      { class: 'grid two' },
      h('div', { class: 'grid' }, system.card, components.card),
      h('div', { class: 'grid' }, alerts.card, models.card, actionsPanel.card, leaks.card, quick.card),
    ),
  );

  // --- state (all bounded) ---------------------------------------------------------------------
  const componentViews = new Map<string, ComponentView>();
  let latest: LiveSample | null = null;
  let pressure: PressureEvent | null = null;
  const activeAlerts = new Map<string, Alert>();
  const alertItems = new Map<string, { li: HTMLLIElement; signature: string }>();
  const leakEvents = new Map<string, LeakEvent>();
  const modelRows = new Map<string, { tr: HTMLTableRowElement; name: HTMLElement; meta: HTMLElement; ram: HTMLElement; idle: HTMLElement; pin: HTMLButtonElement }>();
  let modelList: LoadedModel[] = [];
  let frame: number | null = null;
  let visible = true;
  let disposed = false;
  let alertsDirty = true;
  let modelsDirty = true;
  let leaksDirty = true;

  const componentView = (name: string): ComponentView | null => {
    const existing = componentViews.get(name);
    if (existing) return existing;
    if (componentViews.size >= MAX_COMPONENTS) return null;
    const color = PALETTE[componentViews.size % PALETTE.length] as string;
    const rss = h('span', { class: 'value' });
    const pss = h('span');
    const procs = h('span');
    const body = h('div', { class: 'card', id: `component-${name}`, 'data-component': name });
    body.append(
      h('div', { class: 'comp-head' }, h('h3', { text: name }), rss),
      h('p', { class: 'small muted' }, 'PSS ', pss, ' · processes ', procs),
    );
    componentsGrid.append(body);
    const chart = new LiveChart(
      body,
      {
        label: `Memory of component ${name}: RSS and PSS`,
        height: 120,
        legend: false,
        series: [
          { label: 'RSS', stroke: color, fill: `${color}1a` },
          { label: 'PSS', stroke: color, dash: [4, 3], width: 1.5 },
        ],
        syncKey: 'live',
      },
      LIVE_POINTS,
    );
    const view = { chart, rss, pss, procs };
    componentViews.set(name, view);
    return view;
  };

  // --- rendering ----------------------------------------------------------------------------------
  /** Components with processes first (in the order they appeared), then the idle ones. */
  let order = '';
  const sortComponents = () => {
    if (!latest) return;
    const sample = latest;
    const names = [...componentViews.keys()];
    const active = (name: string) => (sample.components[name]?.processCount ?? 0) > 0;
    const sorted = [...names.filter(active), ...names.filter((n) => !active(n))];
    const key = sorted.join('|');
    if (key === order) return;
    order = key;
    for (const name of sorted) {
      const element = componentsGrid.querySelector(`[data-component="${CSS.escape(name)}"]`);
      if (element) componentsGrid.append(element);
    }
  };

  const renderSample = () => {
    if (!latest) return;
    sortComponents();
    const s = latest.system;
    setText(systemStats.available, `${formatBytes(s.availableBytes)} (${formatPercent((100 * s.availableBytes) / Math.max(1, s.totalBytes))})`);
    setText(systemStats.used, formatBytes(s.usedBytes));
    setText(systemStats.total, formatBytes(s.totalBytes));
    setText(systemStats.swap, s.swapTotalBytes > 0 ? `${formatBytes(s.swapUsedBytes)} of ${formatBytes(s.swapTotalBytes)}` : 'no swap');
    setText(systemStats.psi, s.psi ? `${s.psi.someAvg10.toFixed(1)}% / ${s.psi.fullAvg10.toFixed(1)}%` : 'n/a');
    setText(byId('system-updated'), `updated ${formatTime(latest.timestampMs)}`);
    // The time of the sample on screen, for scripts and tests that wait for the page to catch up.
    system.card.dataset.lastSample = String(latest.timestampMs);
    for (const [name, usage] of Object.entries(latest.components)) {
      const view = componentViews.get(name);
      if (!view) continue;
      setText(view.rss, formatBytes(usage.rssBytes));
      setText(view.pss, formatBytes(usage.pssBytes));
      setText(view.procs, String(usage.processCount));
    }
  };

  const alertSignature = (a: Alert) => `${a.severity}|${a.status}|${a.atMs}|${a.title}|${a.message}|${JSON.stringify(a.recommendations)}`;

  const recommendationItem = (r: Recommendation) => {
    const saving = r.expectedSavingBytes && !/\bfrees?\b/i.test(r.action) ? h('span', { class: 'muted', text: ` (frees about ${formatBytes(r.expectedSavingBytes)})` }) : null;
    const li = h('li', {}, r.action, saving);
    const action = recommendationAction(r.command);
    if (action) li.append(actionButton(action.label, action.run));
    else if (r.command) li.append(' ', h('code', { text: r.command }));
    return li;
  };

  const buildAlertItem = (a: Alert): HTMLLIElement =>
    h(
      'li',
      { class: `alert sev-${a.severity}`, 'data-alert': a.key },
      h('div', { class: 'title', text: `${a.title}` }),
      h('div', { class: 'msg', text: a.message }),
      h('div', { class: 'small muted', text: `${a.severity} · since ${formatTime(a.sinceMs)}${a.component ? ` · ${a.component}` : ''}` }),
      a.recommendations.length ? h('ul', {}, ...a.recommendations.map(recommendationItem)) : null,
      h('div', { class: 'controls' }, actionButton('Acknowledge', () => acknowledgeAlert(a.key), 'btn secondary')),
    );

  const pressureItem = h('li', { class: 'alert', id: 'pressure-alert', hidden: true });
  const pressureTitle = h('div', { class: 'title' });
  const pressureReasons = h('ul', { class: 'reasons' });
  pressureItem.append(
    pressureTitle,
    pressureReasons,
    h('div', { class: 'controls' }, actionButton('Low-memory mode on', () => setLowMemory(true))),
  );
  alertsList.append(pressureItem);

  const renderAlerts = () => {
    alertsDirty = false;
    const level = pressure?.level ?? 'low';
    const showPressure = level !== 'low';
    pressureItem.hidden = !showPressure;
    if (showPressure && pressure) {
      pressureItem.className = `alert pressure-${level}`;
      setText(pressureTitle, `Memory pressure is ${level}`);
      const reasons = pressure.reasons.length ? pressure.reasons : ['no reason given'];
      if (pressureReasons.dataset.reasons !== reasons.join('\n')) {
        pressureReasons.dataset.reasons = reasons.join('\n');
        pressureReasons.replaceChildren(...reasons.map((r) => h('li', { text: r })));
      }
    }
    const shown = [...activeAlerts.values()]
      .sort((a, b) => (SEVERITY_RANK[a.severity] ?? 3) - (SEVERITY_RANK[b.severity] ?? 3) || b.atMs - a.atMs)
      .slice(0, MAX_ALERTS);
    const keep = new Set(shown.map((a) => a.key));
    for (const [key, item] of alertItems) {
      if (!keep.has(key)) {
        item.li.remove();
        alertItems.delete(key);
      }
    }
    for (const a of shown) {
      const signature = alertSignature(a);
      const item = alertItems.get(a.key);
      if (item && item.signature === signature) {
        alertsList.append(item.li); // keeps the sort order; moves, does not re-create
        continue;
      }
      const li = buildAlertItem(a);
      if (item) item.li.replaceWith(li);
      alertsList.append(li);
      alertItems.set(a.key, { li, signature });
    }
    alertsEmpty.hidden = showPressure || shown.length > 0;
  };

  const renderLeaks = () => {
    leaksDirty = false;
    const items = [...leakEvents.values()].filter((l) => l.kind === 'leak').slice(0, MAX_LEAKS);
    leaksList.replaceChildren(
      ...items.map((l) =>
        h(
          'li',
          { class: 'alert sev-warning', 'data-leak': l.component },
          h('div', { class: 'title', text: l.component }),
          h(
            'div',
            { class: 'small' },
            l.slopeBytesPerHour !== undefined ? `growing ${formatBytes(l.slopeBytesPerHour)}/h` : (l.title ?? 'growing steadily'),
            l.confidence !== undefined ? ` · confidence ${Math.round(l.confidence * 100)}%` : '',
            l.projectedExhaustionMs ? ` · exhausts memory in ${formatDuration(l.projectedExhaustionMs - Date.now())}` : '',
          ),
        ),
      ),
    );
    leaksEmpty.hidden = items.length > 0;
  };

  const renderModels = () => {
    modelsDirty = false;
    const now = Date.now();
    const names = new Set(modelList.map((m) => m.name));
    for (const [name, row] of modelRows) {
      if (!names.has(name)) {
        row.tr.remove();
        modelRows.delete(name);
      }
    }
    for (const m of modelList) {
      let row = modelRows.get(m.name);
      if (!row) {
        const nameText = h('span');
        const meta = h('div', { class: 'small muted' });
        const ram = h('td');
        const idle = h('td');
        const pin = h('button', { type: 'button', class: 'btn secondary' });
        const name = m.name;
        pin.addEventListener('click', () => {
          pin.disabled = true;
          void pinModel(name, pin.dataset.pinned !== 'true').finally(() => (pin.disabled = false));
        });
        const unload = actionButton('Unload', () => unloadModel(name), 'btn danger');
        unload.dataset.unload = name;
        unload.setAttribute('aria-label', `Unload ${name}`);
        const tr = h('tr', { 'data-model': name }, h('th', { scope: 'row' }, nameText, meta), ram, idle, h('td', { class: 'actions' }, pin, unload));
        row = { tr, name: nameText, meta, ram, idle, pin };
        modelRows.set(name, row);
        modelsBody.append(tr);
      }
      setText(row.name, m.name);
      setText(
        row.meta,
        `${m.pinned ? 'pinned · ' : ''}ctx ${m.contextLength ?? '–'} · VRAM ${formatBytes(m.sizeVramBytes)}${m.inFlight ? ` · ${m.inFlight} request${m.inFlight > 1 ? 's' : ''} running` : ''}`,
      );
      setText(row.ram, formatBytes(Math.max(0, m.sizeBytes - m.sizeVramBytes)));
      setText(row.idle, m.idleSinceMs === null ? 'in use' : formatDuration(now - m.idleSinceMs));
      row.pin.dataset.pinned = String(m.pinned);
      setText(row.pin, m.pinned ? 'Unpin' : 'Pin');
      row.pin.setAttribute('aria-label', `${m.pinned ? 'Unpin' : 'Pin'} ${m.name}`);
    }
    modelsTable.hidden = modelList.length === 0;
    if (modelList.length > 0) modelsNote.hidden = true;
    else if (modelsNote.classList.contains('empty')) {
      modelsNote.hidden = false;
      setText(modelsNote, 'No model is loaded.');
    }
  };

  const render = () => {
    frame = null;
    if (disposed) return;
    renderSample();
    systemChart.render();
    for (const view of componentViews.values()) view.chart.render();
    if (alertsDirty) renderAlerts();
    if (leaksDirty) renderLeaks();
    if (modelsDirty) renderModels();
  };
  const scheduleRender = () => {
    if (frame === null && !disposed && visible) frame = requestAnimationFrame(render);
  };

  // --- the feed -----------------------------------------------------------------------------------
  const onSample = (sample: LiveSample) => {
    latest = sample;
    const s = sample.system;
    systemChart.push(sample.timestampMs, [s.usedBytes, s.availableBytes]);
    for (const name of Object.keys(sample.components)) componentView(name);
    for (const [name, view] of componentViews) {
      const usage = sample.components[name];
      view.chart.push(sample.timestampMs, [usage?.rssBytes ?? null, usage?.pssBytes ?? null]);
    }
    scheduleRender();
  };

  const onAlert = (alert: Alert) => {
    if (alert.status === 'resolved' || alert.acknowledgedAtMs) activeAlerts.delete(alert.key);
    else {
      activeAlerts.set(alert.key, alert);
      if (activeAlerts.size > MAX_ALERTS * 2) {
        // Keep the newest: a flood of distinct keys must not grow the map without end.
        const oldest = [...activeAlerts.values()].sort((a, b) => a.atMs - b.atMs)[0];
        if (oldest) activeAlerts.delete(oldest.key);
      }
    }
    if (alert.kind === 'leak' && alert.component) {
      if (alert.status === 'firing') leakEvents.set(alert.component, { ...leakEvents.get(alert.component), kind: 'leak', component: alert.component, title: alert.title });
      else leakEvents.delete(alert.component);
      leaksDirty = true;
    }
    alertsDirty = true;
    scheduleRender();
  };

  const onLeak = (event: LeakEvent) => {
    if (event.kind === 'clear') leakEvents.delete(event.component);
    else if (leakEvents.size < MAX_LEAKS || leakEvents.has(event.component)) leakEvents.set(event.component, event);
    leaksDirty = true;
    scheduleRender();
  };

  const onModels = (list: LoadedModel[], extras: { budgetBytes?: number; queued?: number } = {}) => {
    const parts = [extras.budgetBytes !== undefined ? `budget ${formatBytes(extras.budgetBytes)}` : '', extras.queued ? `${extras.queued} queued` : ''].filter(Boolean);
    setText(modelsSub, parts.join(' · '));
    modelList = list.slice(0, 100);
    modelsDirty = true;
    scheduleRender();
  };

  const connection = byId('connection');
  const events = new EventSource('/api/events');
  const parse =
    <T,>(apply: (data: T) => void) =>
    (event: Event) => {
      try {
        apply(JSON.parse(String((event as MessageEvent).data)) as T);
      } catch (error) {
        console.warn(`memtide: ignored a malformed ${event.type} event`, error);
      }
    };
  // A drop that reconnects within a few seconds (the runner restarting, a proxy timeout) does not flash the header.
  let downTimer: ReturnType<typeof setTimeout> | null = null;
  events.addEventListener('open', () => {
    if (downTimer !== null) clearTimeout(downTimer);
    downTimer = null;
    connection.textContent = 'live';
    connection.classList.remove('down');
  });
  events.addEventListener('error', () => {
    if (downTimer !== null || disposed) return;
    downTimer = setTimeout(() => {
      downTimer = null;
      if (events.readyState === EventSource.OPEN) return;
      connection.textContent = events.readyState === EventSource.CLOSED ? 'disconnected: reload the page' : 'reconnecting…';
      connection.classList.add('down');
    }, 3000);
  });
  events.addEventListener('sample', parse<LiveSample>(onSample));
  events.addEventListener(
    'pressure',
    parse<PressureEvent>((event) => {
      pressure = event;
      alertsDirty = true;
      onPressure(event);
      actionsPanel.refreshSoon();
      scheduleRender();
    }),
  );
  events.addEventListener('alert', parse<Alert>(onAlert));
  events.addEventListener('leak', parse<LeakEvent>(onLeak));
  events.addEventListener('models', parse<LoadedModel[] | { models: LoadedModel[] }>((data) => onModels(Array.isArray(data) ? data : data.models)));

  // --- polled panels ------------------------------------------------------------------------------
  let modelsTimer: ReturnType<typeof setTimeout> | null = null;
  let modelsAvailable = true;
  const pollModels = async () => {
    modelsTimer = null;
    if (disposed || !modelsAvailable) return;
    if (visible && !document.hidden) {
      try {
        const data = await api<LoadedModel[] | { models: LoadedModel[]; budgetBytes?: number; queued?: number }>('/api/models');
        onModels(Array.isArray(data) ? data : data.models, Array.isArray(data) ? {} : data);
      } catch (error) {
        if (error instanceof ApiError && error.unavailable && error.status === 404) modelsAvailable = false;
        modelsNote.className = 'unavailable';
        modelsNote.hidden = false;
        modelsNote.textContent = describeError('Model list', error);
        modelsTable.hidden = true;
      }
    }
    // The idle column ticks even between polls.
    modelsDirty = true;
    scheduleRender();
    if (!disposed && modelsAvailable) modelsTimer = setTimeout(() => void pollModels(), MODELS_POLL_MS);
  };
  void pollModels();

  const loadAlerts = async () => {
    try {
      const data = await api<{ alerts: Alert[] } | Alert[]>('/api/alerts?status=unacknowledged&since=24h&limit=500');
      const list = Array.isArray(data) ? data : data.alerts;
      // Latest notification per key decides whether it is active.
      const latestByKey = new Map<string, Alert>();
      for (const a of list) if ((latestByKey.get(a.key)?.atMs ?? -1) <= a.atMs) latestByKey.set(a.key, a);
      for (const a of latestByKey.values()) onAlert(a);
    } catch (error) {
      alertsNote.hidden = false;
      alertsNote.textContent = describeError('Alert list', error);
    }
  };
  void loadAlerts();

  return {
    get pointCount() {
      return systemChart.pointCount;
    },
    setVisible(value) {
      visible = value;
      actionsPanel.setVisible(value);
      if (visible) {
        alertsDirty = modelsDirty = leaksDirty = true;
        scheduleRender();
      }
    },
    dispose() {
      disposed = true;
      events.close();
      if (downTimer !== null) clearTimeout(downTimer);
      if (frame !== null) cancelAnimationFrame(frame);
      if (modelsTimer !== null) clearTimeout(modelsTimer);
      actionsPanel.dispose();
      systemChart.destroy();
      for (const view of componentViews.values()) view.chart.destroy();
      componentViews.clear();
    },
  };
}
