/**
 * uPlot charts for the dashboard. Live charts keep their points in ring
 * buffers (a fixed number per series, whatever the uptime) and copy them into
 * arrays reused from one redraw to the next; redraws are batched to one per
 * animation frame by the caller. Each chart follows its container's width
 * (ResizeObserver) and says how many points it holds in `data-points`.
 */
import uPlot from 'uplot';
import { RingBuffer } from '../../../browser/ringBuffer.js';
import { formatBytes } from './format.js';

export interface SeriesSpec {
  label: string;
  stroke: string;
  fill?: string;
  width?: number;
  dash?: number[];
  /** Value shown in the legend (default bytes). */
  format?: (value: number) => string;
  /** Draw steps instead of lines (pressure levels). */
  stepped?: boolean;
}

export interface ChartSpec {
  /** Accessible description of what the chart shows. */
  label: string;
  height: number;
  series: SeriesSpec[];
  /** Y axis tick labels (default bytes). */
  yFormat?: (value: number) => string;
  yRange?: [number, number];
  /** Y tick steps (default: binary steps for bytes). */
  yIncrs?: number[];
  legend?: boolean;
  /** Charts sharing a key move their cursors together. */
  syncKey?: string;
  /** Drag on the chart selects a time range; called with [sinceMs, untilMs]. */
  onSelect?: (sinceMs: number, untilMs: number) => void;
}

export const PALETTE = ['#1d5fbf', '#d9480f', '#2b8a3e', '#7048e8', '#c2255c', '#0b7285', '#e67700', '#5c940d', '#862e9c', '#495057'];

/** Tick steps for byte axes: 1, 2, 4 ... 512 of each binary unit, so labels read 2 GiB, 4 GiB, not 4.7 GiB. */
const BYTE_INCREMENTS = [1, 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4].flatMap((unit) => [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((k) => k * unit));

const axisStyle = { stroke: '#5a6577', grid: { stroke: '#e8ecf2', width: 1 }, ticks: { stroke: '#dde2ea', width: 1 } };

function makeOptions(spec: ChartSpec, width: number): uPlot.Options {
  const yFormat = spec.yFormat ?? ((v: number) => formatBytes(v));
  const options: uPlot.Options = {
    width,
    height: spec.height,
    ms: 1,
    legend: { show: spec.legend ?? true, live: true },
    cursor: {
      drag: { x: spec.onSelect !== undefined, y: false, setScale: false },
      ...(spec.syncKey ? { sync: { key: spec.syncKey } } : {}),
    },
    scales: { x: { time: true }, y: spec.yRange ? { range: spec.yRange } : { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1] } },
    axes: [
      { ...axisStyle },
      {
        ...axisStyle,
        size: 72,
        ...(spec.yIncrs ? { incrs: spec.yIncrs, space: 12 } : spec.yFormat ? {} : { incrs: BYTE_INCREMENTS }),
        values: (_u, splits) => splits.map((v) => (v === null ? '' : yFormat(v))),
      },
    ],
    series: [
      {},
      ...spec.series.map((s) => ({
        label: s.label,
        stroke: s.stroke,
        width: s.width ?? 2,
        ...(s.fill ? { fill: s.fill } : {}),
        ...(s.dash ? { dash: s.dash } : {}),
        ...(s.stepped ? { paths: uPlot.paths.stepped?.({ align: 1 }) } : {}),
        spanGaps: false,
        points: { show: false },
        value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '–' : (s.format ?? yFormat)(v)),
      })),
    ],
  };
  if (spec.onSelect) {
    const onSelect = spec.onSelect;
    options.hooks = {
      setSelect: [
        (u) => {
          if (u.select.width < 4) return;
          const since = u.posToVal(u.select.left, 'x');
          const until = u.posToVal(u.select.left + u.select.width, 'x');
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          onSelect(Math.floor(since), Math.ceil(until));
        },
      ],
    };
  }
  return options;
}

/** A uPlot chart in `parent` that follows its width. */
export class Chart {
  readonly element: HTMLElement;
  private readonly plot: uPlot;
  private readonly observer: ResizeObserver;
  private lastWidth = 0;

  constructor(parent: HTMLElement, spec: ChartSpec) {
    this.element = document.createElement('div');
    this.element.className = 'chart';
    this.element.setAttribute('role', 'img');
    this.element.setAttribute('aria-label', spec.label);
    this.element.dataset.points = '0';
    parent.appendChild(this.element);
    this.lastWidth = Math.max(200, Math.floor(this.element.clientWidth || parent.clientWidth || 400));
    this.plot = new uPlot(makeOptions(spec, this.lastWidth), [[], ...spec.series.map(() => [])] as unknown as uPlot.AlignedData, this.element);
    this.observer = new ResizeObserver(() => {
      const width = Math.max(200, Math.floor(this.element.clientWidth));
      if (width !== this.lastWidth) {
        this.lastWidth = width;
        this.plot.setSize({ width, height: spec.height });
      }
    });
    this.observer.observe(this.element);
  }

  /** Plot width in CSS pixels (what history queries downsample to). */
  get plotWidth(): number {
    return Math.max(50, Math.round(this.plot.bbox.width / (window.devicePixelRatio || 1)));
  }

  setData(data: uPlot.AlignedData, resetScales = true): void {
    this.plot.setData(data, resetScales);
    this.element.dataset.points = String(data[0]?.length ?? 0);
  }

  /** Shows exactly this time range (a history query's), whatever the data covers. */
  setXRange(minMs: number, maxMs: number): void {
    this.plot.setScale('x', { min: minMs, max: maxMs });
  }

  destroy(): void {
    this.observer.disconnect();
    this.plot.destroy();
    this.element.remove();
  }
}

/**
 * A live chart: the newest `capacity` points of each series. `push` is cheap
 * (ring buffers); `render` copies into reused arrays and redraws.
 */
export class LiveChart {
  private readonly chart: Chart;
  private readonly times: RingBuffer<number>;
  private readonly columns: Array<RingBuffer<number | null>>;
  private readonly aligned: Array<Array<number | null>>;
  private dirty = false;

  constructor(parent: HTMLElement, spec: ChartSpec, readonly capacity: number) {
    this.chart = new Chart(parent, spec);
    this.times = new RingBuffer<number>(capacity);
    this.columns = spec.series.map(() => new RingBuffer<number | null>(capacity));
    this.aligned = [[], ...spec.series.map(() => [])];
  }

  get element(): HTMLElement {
    return this.chart.element;
  }

  get pointCount(): number {
    return this.times.length;
  }

  push(timestampMs: number, values: ReadonlyArray<number | null>): void {
    // Out-of-order or repeated timestamps (a replayed event after a reconnect) are dropped: uPlot needs x ascending.
    const last = this.times.last();
    if (last !== undefined && timestampMs <= last) return;
    this.times.push(timestampMs);
    this.columns.forEach((column, i) => column.push(values[i] ?? null));
    this.dirty = true;
  }

  /** Redraws if anything was pushed since the last render. */
  render(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.times.toArray(this.aligned[0] as number[]);
    this.columns.forEach((column, i) => column.toArray(this.aligned[i + 1] as Array<number | null>));
    this.chart.setData(this.aligned as unknown as uPlot.AlignedData);
  }

  destroy(): void {
    this.chart.destroy();
  }
}
