/**
 * The history view: any time range of the SQLite history as zoomable charts
 * (`GET /api/history`, downsampled by the server to the chart's width: drag
 * across a chart to zoom into that range, which refetches at full
 * resolution), and the records of the range as virtualised lists (samples
 * paged from `GET /api/samples`, alerts, pressure changes, and the
 * coordinator's and governor's actions from `GET /api/actions`).
 *
 * Fetched chart series and sample pages go through the kit's AssetCache with
 * a byte budget, so going back to a range is instant and scrolling through
 * 100,000 samples never holds more than the budget.
 */
import { AssetCache } from '../../../browser/assetCache.js';
import type { PressureEvent } from '../../../browser/liveTypes.js';
import { PRESSURE_LEVELS } from '../../../browser/liveTypes.js';
import { actionState, actionTarget, changeText, memoryText, type ActionRow, type ActionsBody } from './actionText.js';
import { api, describeError } from './api.js';
import { Chart, PALETTE, type SeriesSpec } from './charts.js';
import { card, h, setText } from './dom.js';
import { formatBytes, formatDateTime, formatPercent, fromLocalInput, toLocalInput } from './format.js';
import { createVirtualTable, ROW_HEIGHT, type Column, type RowSource, type VirtualTable } from './vtable.js';
import type uPlot from 'uplot';

/** `[series, t, min, avg, max, n]`, as `GET /api/history` sends its points. */
type PixelPoint = [string, number, number, number, number, number];
interface HistoryBody {
  kind: string;
  sinceMs: number;
  untilMs: number;
  bucketMs: number;
  points: PixelPoint[];
  series: string[];
  rowsRead: number;
}
interface SampleRow {
  timestampMs: number;
  resolution: string;
  totalBytes: number;
  availableBytes: number;
  swapUsedBytes: number;
  psiSomeAvg10: number | null;
  components: Record<string, { rssBytes: number; pssBytes: number | null; processCount: number }>;
}
interface SamplesBody {
  total: number;
  offset: number;
  rows: SampleRow[];
}
interface AlertRow {
  key: string;
  severity: string;
  status: string;
  title: string;
  component: string | null;
  atMs: number;
  acknowledgedAtMs: number | null;
}

/** A cached response: the parsed body and the size of its text (what the budget counts). */
interface Cached<T> {
  data: T;
  bytes: number;
}

const PAGE_ROWS = 500;
const MAX_PAGES_IN_FLIGHT = 2;
const RANGES: Array<[string, number]> = [
  ['15 min', 15 * 60_000],
  ['1 h', 3_600_000],
  ['6 h', 6 * 3_600_000],
  ['24 h', 24 * 3_600_000],
  ['7 d', 7 * 24 * 3_600_000],
  ['30 d', 30 * 24 * 3_600_000],
];

export const historyCache = new AssetCache<Cached<unknown>>({ maxBytes: 8 * 1024 * 1024, sizeOf: (v) => v.bytes });
export const pageCache = new AssetCache<Cached<SamplesBody>>({ maxBytes: 4 * 1024 * 1024, sizeOf: (v) => v.bytes });

async function fetchCached<T>(cache: AssetCache<Cached<T>>, url: string): Promise<T> {
  const entry = await cache.getOrLoad(url, async () => {
    const data = await api<T>(url);
    // A JS string holds 2 bytes a character; the parsed form is of the same order.
    return { data, bytes: JSON.stringify(data).length * 2 };
  });
  return entry.data;
}

/** Aligned uPlot data from pixel points: one x per column, one array per wanted series. */
function align(points: PixelPoint[], pick: Array<{ series: string; column: 2 | 3 | 4 }>): { x: number[]; ys: Array<Array<number | null>> } {
  const xs = [...new Set(points.map((p) => p[1]))].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const ys = pick.map(() => new Array<number | null>(xs.length).fill(null));
  for (const p of points) {
    const i = index.get(p[1]) as number;
    pick.forEach((wanted, k) => {
      if (wanted.series === p[0]) (ys[k] as Array<number | null>)[i] = p[wanted.column];
    });
  }
  return { x: xs, ys };
}

/** Sample pages for the virtualised list, fetched on demand and kept within the page cache's budget. */
class SamplesSource implements RowSource<SampleRow> {
  count = 0;
  /** The pages on screen, so row lookups do not count as cache hits one by one. */
  private readonly hot = new Map<number, SampleRow[]>();
  private readonly wanted = new Set<number>();
  private readonly inFlight = new Set<number>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(
    private readonly sinceMs: number,
    private readonly untilMs: number,
    private readonly onLoaded: (total: number) => void,
    private readonly onError: (message: string) => void,
  ) {}

  private url(page: number): string {
    return `/api/samples?since=${this.sinceMs}&until=${this.untilMs}&offset=${page * PAGE_ROWS}&limit=${PAGE_ROWS}`;
  }

  row(index: number): SampleRow | undefined {
    const page = Math.floor(index / PAGE_ROWS);
    let rows = this.hot.get(page);
    if (!rows) {
      rows = pageCache.get(this.url(page))?.data.rows;
      if (!rows) return undefined;
      this.hot.set(page, rows);
      if (this.hot.size > 4) this.hot.delete(this.hot.keys().next().value as number);
    }
    return rows[index - page * PAGE_ROWS];
  }

  request(start: number): void {
    const page = Math.floor(start / PAGE_ROWS);
    if (this.inFlight.has(page)) return;
    this.wanted.delete(page); // re-insert: the most recent wishes are served first
    this.wanted.add(page);
    // While the user drags the scrollbar, wait until the position settles.
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), 80);
  }

  /** Loads page 0 (which tells the total). */
  start(): void {
    this.request(0);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }

  private flush(): void {
    this.timer = null;
    if (this.closed) return;
    // Only the newest few wishes: pages scrolled past long ago are not worth fetching.
    const pages = [...this.wanted].slice(-4).reverse();
    this.wanted.clear();
    for (const page of pages) {
      if (this.inFlight.size >= MAX_PAGES_IN_FLIGHT) {
        this.wanted.add(page);
        continue;
      }
      this.inFlight.add(page);
      fetchCached(pageCache, this.url(page))
        .then((body) => {
          if (this.closed) return;
          this.hot.set(page, body.rows);
          if (this.hot.size > 4) this.hot.delete(this.hot.keys().next().value as number);
          this.count = body.total;
          this.onLoaded(body.total);
        })
        .catch((error: unknown) => {
          if (!this.closed) this.onError(describeError('Loading samples', error));
        })
        .finally(() => {
          this.inFlight.delete(page);
          if (!this.closed && this.wanted.size > 0 && this.timer === null) this.timer = setTimeout(() => this.flush(), 0);
        });
    }
  }
}

class ArraySource<R> implements RowSource<R> {
  constructor(private readonly rows: R[]) {}
  get count() {
    return this.rows.length;
  }
  row(index: number): R | undefined {
    return this.rows[index];
  }
  request(): void {}
}

const componentsText = (row: SampleRow) =>
  Object.entries(row.components)
    .filter(([, c]) => c.rssBytes > 0)
    .sort((a, b) => b[1].rssBytes - a[1].rssBytes)
    .map(([name, c]) => `${name} ${formatBytes(c.rssBytes)}`)
    .join(' · ');

const SAMPLE_COLUMNS: Column<SampleRow>[] = [
  { label: 'Time', width: '180px', value: (r) => formatDateTime(r.timestampMs), align: 'left' },
  { label: 'Available', width: '110px', value: (r) => formatBytes(r.availableBytes) },
  { label: 'Used', width: '110px', value: (r) => formatBytes(r.totalBytes - r.availableBytes) },
  { label: 'Swap used', width: '100px', value: (r) => formatBytes(r.swapUsedBytes) },
  { label: 'PSI some', width: '80px', value: (r) => formatPercent(r.psiSomeAvg10) },
  { label: 'Components (RSS)', width: 'minmax(0,1fr)', value: componentsText, align: 'left' },
];
const ALERT_COLUMNS: Column<AlertRow>[] = [
  { label: 'Time', width: '180px', value: (r) => formatDateTime(r.atMs), align: 'left' },
  { label: 'Severity', width: '90px', value: (r) => r.severity, align: 'left' },
  { label: 'Status', width: '90px', value: (r) => r.status, align: 'left' },
  { label: 'Alert', width: 'minmax(0,2fr)', value: (r) => r.title, align: 'left' },
  { label: 'Component', width: '120px', value: (r) => r.component ?? '–', align: 'left' },
  { label: 'Acknowledged', width: '180px', value: (r) => (r.acknowledgedAtMs ? formatDateTime(r.acknowledgedAtMs) : '–'), align: 'left' },
];
const PRESSURE_COLUMNS: Column<PressureEvent>[] = [
  { label: 'Time', width: '180px', value: (r) => formatDateTime(r.atMs), align: 'left' },
  { label: 'Level', width: '90px', value: (r) => r.level, align: 'left' },
  { label: 'From', width: '90px', value: (r) => r.previous ?? 'start', align: 'left' },
  { label: 'Reasons', width: 'minmax(0,1fr)', value: (r) => r.reasons.join('; '), align: 'left' },
];

const ACTION_COLUMNS: Column<ActionRow>[] = [
  { label: 'Time', width: '180px', value: (r) => formatDateTime(r.atMs), align: 'left' },
  { label: 'Source', width: '95px', value: (r) => r.source, align: 'left' },
  { label: 'Action', width: 'minmax(0,1.2fr)', value: (r) => r.kind, align: 'left' },
  { label: 'Level', width: '70px', value: (r) => r.level ?? '–', align: 'left' },
  { label: 'Target', width: 'minmax(0,1.3fr)', value: (r) => actionTarget(r) || '–', align: 'left' },
  { label: 'Executed', width: '170px', value: (r) => ({ executed: 'executed', observe: 'observe-only: not executed', failed: `failed: ${r.error ?? ''}` })[actionState(r)], align: 'left' },
  { label: 'Target memory', width: '170px', value: (r) => memoryText(r.componentBytesBefore, r.componentBytesAfter, r.measuredAtMs) },
  { label: 'Change', width: 'minmax(0,1.3fr)', value: (r) => changeText(r) || '–' },
  { label: 'Undone', width: '180px', value: (r) => (r.undoneAtMs === null ? '–' : formatDateTime(r.undoneAtMs)), align: 'left' },
];

type ListKind = 'samples' | 'alerts' | 'pressure' | 'actions';

export interface HistoryView {
  show(): void;
  /** Sets the range (from a link, or a test) and loads it. */
  setRange(sinceMs: number, untilMs: number): void;
  dispose(): void;
}

export function createHistoryView(root: HTMLElement, onCacheChange: () => void): HistoryView {
  let range = { sinceMs: Date.now() - 3_600_000, untilMs: Date.now() };
  const zoomStack: Array<typeof range> = [];
  let listKind: ListKind = 'samples';
  let loaded = false;
  let generation = 0;

  // --- controls -----------------------------------------------------------------------------
  const sinceInput = h('input', { type: 'datetime-local', id: 'history-since', step: 60 });
  const untilInput = h('input', { type: 'datetime-local', id: 'history-until', step: 60 });
  const fieldSelect = h('select', { id: 'history-field' }, h('option', { value: 'rss', text: 'RSS' }), h('option', { value: 'pss', text: 'PSS' }));
  const status = h('p', { class: 'small muted', id: 'history-status', role: 'status', 'aria-live': 'polite' });
  const presets = h('div', { class: 'seg', role: 'group', 'aria-label': 'Show the last' });
  for (const [label, ms] of RANGES) {
    const button = h('button', { type: 'button', 'aria-pressed': 'false', 'data-range-ms': ms, text: label });
    button.addEventListener('click', () => {
      zoomStack.length = 0;
      const now = Date.now();
      setRangeAndLoad({ sinceMs: now - ms, untilMs: now });
    });
    presets.append(button);
  }
  const button = (label: string, onClick: () => void, extra: Record<string, string> = {}) => {
    const b = h('button', { type: 'button', class: 'btn secondary', ...extra, text: label });
    b.addEventListener('click', onClick);
    return b;
  };
  const shift = (fraction: number) => {
    const span = range.untilMs - range.sinceMs;
    setRangeAndLoad({ sinceMs: range.sinceMs + span * fraction, untilMs: range.untilMs + span * fraction });
  };
  const zoom = (factor: number) => {
    const center = (range.sinceMs + range.untilMs) / 2;
    const half = ((range.untilMs - range.sinceMs) * factor) / 2;
    if (factor < 1) zoomStack.push(range);
    setRangeAndLoad({ sinceMs: Math.round(center - half), untilMs: Math.round(center + half) });
  };
  const controls = card('History', 'history-controls', h('span', { class: 'sub', text: 'Drag across a chart to zoom into that range' }));
  controls.body.append(
    h(
      'div',
      { class: 'controls' },
      presets,
      h('label', { for: 'history-since' }, 'From', sinceInput),
      h('label', { for: 'history-until' }, 'To', untilInput),
      button('Show range', () => {
        const since = fromLocalInput(sinceInput.value);
        const until = fromLocalInput(untilInput.value);
        if (since === null || until === null || until <= since) {
          setText(status, 'Pick a start before the end.');
          sinceInput.setAttribute('aria-invalid', 'true');
          return;
        }
        sinceInput.removeAttribute('aria-invalid');
        zoomStack.length = 0;
        setRangeAndLoad({ sinceMs: since, untilMs: until });
      }),
      h('label', { for: 'history-field' }, 'Component memory', fieldSelect),
    ),
    h(
      'div',
      { class: 'controls' },
      button('← Earlier', () => shift(-0.5), { 'aria-label': 'Earlier: move the range back by half its span' }),
      button('Later →', () => shift(0.5), { 'aria-label': 'Later: move the range forward by half its span' }),
      button('Zoom in', () => zoom(0.5)),
      button('Zoom out', () => {
        const previous = zoomStack.pop();
        if (previous) setRangeAndLoad(previous);
        else zoom(2);
      }),
    ),
    status,
  );
  fieldSelect.addEventListener('change', () => void loadCharts());

  const chartsCard = card('Memory over the range', 'history-charts');
  const systemHost = h('div', { id: 'history-system-chart' });
  const componentsHost = h('div', { id: 'history-components-chart' });
  const pressureHost = h('div', { id: 'history-pressure-chart' });
  chartsCard.body.append(h('h3', { text: 'System' }), systemHost, h('h3', { text: 'Components' }), componentsHost, h('h3', { text: 'Pressure level (worst in each column)' }), pressureHost);

  const listTabs = h('div', { class: 'seg', role: 'group', 'aria-label': 'Records to list' });
  const listCount = h('span', { class: 'small muted', id: 'history-list-count' });
  const listHost = h('div', { id: 'history-list' });
  const listNote = h('p', { class: 'unavailable', hidden: true });
  for (const [kind, label] of [
    ['samples', 'Samples'],
    ['alerts', 'Alerts'],
    ['pressure', 'Pressure changes'],
    ['actions', 'Actions'],
  ] as const) {
    const b = h('button', { type: 'button', 'aria-pressed': String(kind === listKind), 'data-list': kind, text: label });
    b.addEventListener('click', () => {
      listKind = kind;
      listTabs.querySelectorAll('button').forEach((other: HTMLButtonElement) => other.setAttribute('aria-pressed', String(other === b)));
      void loadList();
    });
    listTabs.append(b);
  }
  const listCard = card('Records', 'history-records');
  listCard.body.append(h('div', { class: 'list-tabs' }, listTabs, listCount), listNote, listHost);

  root.append(h('div', { class: 'grid' }, controls.card, chartsCard.card, listCard.card));

  // --- charts -------------------------------------------------------------------------------
  let systemChart: Chart | null = null;
  let componentsChart: Chart | null = null;
  let componentsKey = '';
  let pressureChart: Chart | null = null;
  const onSelect = (sinceMs: number, untilMs: number) => {
    zoomStack.push(range);
    setRangeAndLoad({ sinceMs, untilMs });
  };

  const ensureSystemChart = () =>
    (systemChart ??= new Chart(systemHost, {
      label: 'System memory over the selected range: used, available, and the lowest available in each column',
      height: 220,
      series: [
        { label: 'Used', stroke: '#1d5fbf', fill: 'rgba(29,95,191,0.10)' },
        { label: 'Available', stroke: '#2b8a3e' },
        { label: 'Available (min)', stroke: '#2b8a3e', dash: [3, 3], width: 1 },
      ],
      syncKey: 'history',
      onSelect,
    }));

  const ensurePressureChart = () =>
    (pressureChart ??= new Chart(pressureHost, {
      label: 'Worst pressure level in each column of the range',
      height: 130,
      legend: false,
      yIncrs: [1],
      series: [{ label: 'Level', stroke: '#b34700', fill: 'rgba(227,106,0,0.12)', stepped: true, format: (v) => PRESSURE_LEVELS[Math.round(v)] ?? String(v) }],
      yFormat: (v) => (Number.isInteger(v) ? (PRESSURE_LEVELS[v] ?? '') : ''),
      yRange: [0, 3],
      syncKey: 'history',
      onSelect,
    }));

  const chartWidth = () => ensureSystemChart().plotWidth;

  const loadCharts = async () => {
    const mine = ++generation;
    const { sinceMs, untilMs } = range;
    const width = chartWidth();
    const field = fieldSelect.value;
    setText(status, `Loading ${formatDateTime(sinceMs)} – ${formatDateTime(untilMs)}…`);
    const q = `since=${Math.floor(sinceMs)}&until=${Math.ceil(untilMs)}&width=${width}`;
    try {
      const [system, components, pressure] = await Promise.all([
        fetchCached(historyCache as AssetCache<Cached<HistoryBody>>, `/api/history?kind=system&${q}`),
        fetchCached(historyCache as AssetCache<Cached<HistoryBody>>, `/api/history?kind=components&field=${field}&${q}`),
        fetchCached(historyCache as AssetCache<Cached<HistoryBody>>, `/api/history?kind=pressure&${q}`),
      ]);
      if (mine !== generation) return;
      const sys = align(system.points, [
        { series: 'total', column: 3 },
        { series: 'available', column: 3 },
        { series: 'available', column: 2 },
      ]);
      const [total, available, availableMin] = sys.ys as [Array<number | null>, Array<number | null>, Array<number | null>];
      const used = total.map((t, i) => (t === null || available[i] === null ? null : t - (available[i] as number)));
      ensureSystemChart().setData([sys.x, used, available, availableMin] as unknown as uPlot.AlignedData);
      ensureSystemChart().setXRange(sinceMs, untilMs);

      const names = components.series.slice(0, 12);
      const key = names.join('|');
      if (key !== componentsKey) {
        componentsChart?.destroy();
        componentsKey = key;
        const series: SeriesSpec[] = names.map((name, i) => ({ label: name, stroke: PALETTE[i % PALETTE.length] as string }));
        componentsChart = new Chart(componentsHost, {
          label: `Memory (${field.toUpperCase()}) of each component over the selected range`,
          height: 220,
          series: series.length ? series : [{ label: 'no data', stroke: '#999' }],
          syncKey: 'history',
          onSelect,
        });
      }
      const comp = align(
        components.points,
        names.map((series) => ({ series, column: 3 as const })),
      );
      componentsChart?.setData([comp.x, ...(names.length ? comp.ys : [[]])] as unknown as uPlot.AlignedData);
      componentsChart?.setXRange(sinceMs, untilMs);

      const levels = align(pressure.points, [{ series: 'level', column: 4 }]);
      // A level holds until the next change: carry the last one to the end of the range.
      const lastLevel = levels.ys[0]?.at(-1);
      if (lastLevel !== undefined && lastLevel !== null && (levels.x.at(-1) ?? untilMs) < untilMs) {
        levels.x.push(untilMs);
        levels.ys[0]?.push(lastLevel);
      }
      ensurePressureChart().setData([levels.x, ...levels.ys] as unknown as uPlot.AlignedData);
      ensurePressureChart().setXRange(sinceMs, untilMs);
      setText(
        status,
        `${formatDateTime(sinceMs)} – ${formatDateTime(untilMs)}: ${system.rowsRead.toLocaleString()} samples in ${sys.x.length} columns of ${Math.max(1, Math.round(system.bucketMs / 1000))} s.`,
      );
    } catch (error) {
      if (mine === generation) setText(status, describeError('Loading history', error));
    } finally {
      onCacheChange();
    }
  };

  // --- lists --------------------------------------------------------------------------------
  let table: VirtualTable | null = null;
  let samples: SamplesSource | null = null;

  const replaceTable = <R,>(columns: Column<R>[], source: RowSource<R>, label: string) => {
    table?.dispose();
    table = createVirtualTable(listHost, { id: 'history-rows', label, columns, source });
  };

  const loadList = async () => {
    samples?.close();
    samples = null;
    listNote.hidden = true;
    const { sinceMs, untilMs } = range;
    const q = `since=${Math.floor(sinceMs)}`;
    try {
      if (listKind === 'samples') {
        const source = new SamplesSource(
          Math.floor(sinceMs),
          Math.ceil(untilMs),
          (total) => {
            if (table && source === samples) {
              if (table.list.range.totalHeight !== total * ROW_HEIGHT) table.setCount(total);
              table.refresh();
              setText(listCount, `${total.toLocaleString()} samples`);
            }
            onCacheChange();
          },
          (message) => {
            listNote.hidden = false;
            listNote.textContent = message;
          },
        );
        samples = source;
        replaceTable(SAMPLE_COLUMNS, source, 'Samples in the range');
        setText(listCount, 'counting…');
        source.start();
      } else if (listKind === 'alerts') {
        const body = await api<{ alerts: AlertRow[]; truncated: boolean }>(`/api/alerts?${q}&limit=10000`);
        const rows = body.alerts.filter((a) => a.atMs < untilMs);
        replaceTable(ALERT_COLUMNS, new ArraySource(rows), 'Alert notifications in the range');
        setText(listCount, `${rows.length.toLocaleString()} notifications${body.truncated ? ' (first 10,000)' : ''}`);
      } else if (listKind === 'actions') {
        const body = await api<ActionsBody>(`/api/actions?${q}&until=${Math.ceil(untilMs)}&limit=10000`);
        // The API answers newest first; the lists here run oldest first.
        replaceTable(ACTION_COLUMNS, new ArraySource(body.actions.slice().reverse()), 'Actions of the coordinator and the model governor in the range');
        setText(listCount, `${body.actions.length.toLocaleString()} actions${body.truncated ? ' (newest 10,000)' : ''}`);
      } else {
        const body = await api<{ events: PressureEvent[] }>(`/api/pressure?${q}&until=${Math.ceil(untilMs)}`);
        replaceTable(PRESSURE_COLUMNS, new ArraySource(body.events), 'Pressure level changes in the range');
        setText(listCount, `${body.events.length.toLocaleString()} changes`);
      }
    } catch (error) {
      table?.dispose();
      table = null;
      listNote.hidden = false;
      listNote.textContent = describeError(`Loading ${listKind}`, error);
      setText(listCount, '');
    }
  };

  // --- range --------------------------------------------------------------------------------
  const setRangeAndLoad = (next: typeof range) => {
    range = { sinceMs: Math.floor(next.sinceMs), untilMs: Math.ceil(next.untilMs) };
    sinceInput.value = toLocalInput(range.sinceMs);
    untilInput.value = toLocalInput(range.untilMs);
    const span = range.untilMs - range.sinceMs;
    presets.querySelectorAll('button').forEach((b: HTMLButtonElement) => b.setAttribute('aria-pressed', String(Math.abs(Number(b.dataset.rangeMs) - span) < 1000)));
    loaded = true;
    void loadCharts();
    void loadList();
  };

  return {
    show() {
      if (!loaded) {
        const now = Date.now();
        setRangeAndLoad({ sinceMs: now - 3_600_000, untilMs: now });
      }
    },
    setRange(sinceMs, untilMs) {
      zoomStack.length = 0;
      setRangeAndLoad({ sinceMs, untilMs });
    },
    dispose() {
      samples?.close();
      table?.dispose();
      systemChart?.destroy();
      componentsChart?.destroy();
      pressureChart?.destroy();
    },
  };
}
