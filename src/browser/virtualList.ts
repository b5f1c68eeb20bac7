/**
 * Windowing for long lists (seed 7.2): only the rows in view (plus a few
 * above and below) exist in the DOM, whatever the length of the list.
 *
 * `computeVirtualRange` is the pure part (fixed row height): which indexes to
 * render and where. `createVirtualList` is a small framework-free DOM helper
 * built on it that keeps a bounded pool of row elements and reuses them while
 * scrolling, so 100,000 rows cost as many nodes as one screenful.
 *
 * Limit: browsers cap an element's height (Chromium about 33.5 million px),
 * so at 28 px a row one list holds up to about 1.1 million rows.
 */

export interface VirtualRangeInput {
  itemCount: number;
  /** Height of every row in px (> 0). */
  itemHeight: number;
  /** Height of the scrolling viewport in px. */
  viewportHeight: number;
  /** Current scroll offset in px (clamped to the scrollable range). */
  scrollTop: number;
  /** Extra rows rendered above and below the viewport (default 4). */
  overscan?: number;
}

export interface VirtualRange {
  /** First index to render. */
  start: number;
  /** One past the last index to render (`end - start` rows). */
  end: number;
  /** Top of row `start` in px. */
  offsetTop: number;
  /** Height of the whole list in px (the spacer's height). */
  totalHeight: number;
  /** Rows that fit in the viewport (partially visible ones included). */
  visibleCount: number;
}

export class VirtualListError extends Error {
  override readonly name = 'VirtualListError';
  readonly code = 'MEMTIDE_ERR_VIRTUAL_LIST';
}

function nonNegative(value: number): number {
  return Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * The index range to render. Invariants (checked by property tests): the
 * range covers every row that intersects the viewport, and it never holds
 * more than `visibleCount + 2 x overscan` rows.
 */
export function computeVirtualRange(input: VirtualRangeInput): VirtualRange {
  const { itemHeight } = input;
  if (!(Number.isFinite(itemHeight) && itemHeight > 0)) {
    throw new VirtualListError(`itemHeight must be a positive number, got ${String(itemHeight)}`);
  }
  const itemCount = Math.floor(nonNegative(input.itemCount));
  const viewportHeight = nonNegative(input.viewportHeight);
  const overscan = Math.floor(nonNegative(input.overscan ?? 4));
  const totalHeight = itemCount * itemHeight;
  const scrollTop = Math.min(nonNegative(input.scrollTop), Math.max(0, totalHeight - viewportHeight));
  // A viewport of h px starting anywhere intersects at most ceil(h / itemHeight) + 1 rows.
  const visibleCount = Math.ceil(viewportHeight / itemHeight) + 1;
  const firstVisible = Math.min(itemCount, Math.floor(scrollTop / itemHeight));
  // A viewport of any positive height shows at least the row at its top (the division can underflow to 0).
  const bottomRow = Math.ceil((scrollTop + viewportHeight) / itemHeight);
  const lastVisibleExclusive = Math.min(itemCount, viewportHeight > 0 ? Math.max(bottomRow, firstVisible + 1) : bottomRow);
  const start = Math.max(0, firstVisible - overscan);
  const end = Math.min(itemCount, Math.max(lastVisibleExclusive, firstVisible) + overscan);
  return { start, end, offsetTop: start * itemHeight, totalHeight, visibleCount };
}

export interface VirtualListOptions {
  /** The scrolling element (it gets `overflow: auto` if it has no overflow set). */
  viewport: HTMLElement;
  itemCount: number;
  itemHeight: number;
  overscan?: number;
  /** Fills a (reused) row element for `index`. Called again for the same element with other indexes. */
  renderRow(row: HTMLElement, index: number): void;
  /** Makes an empty row element (default a `<div role="row">`). */
  createRow?(): HTMLElement;
  /** Called for a row element leaving the pool for good (clean up what `renderRow` attached). */
  destroyRow?(row: HTMLElement): void;
  /** Accessible name of the list (aria-label). */
  label?: string;
  /** Rows before the first data row in the accessible table (a header row: 1). Default 0. */
  ariaRowOffset?: number;
}

export interface VirtualList {
  /** Changes the number of rows (the list re-renders; the scroll position is kept where possible). */
  setItemCount(count: number): void;
  /** Re-renders the rows in view (e.g. after their data arrived). */
  refresh(): void;
  /** Scrolls so `index` is in view. */
  scrollToIndex(index: number, align?: 'start' | 'end' | 'nearest'): void;
  readonly range: VirtualRange;
  /** Row elements in the DOM now (bounded by visibleCount + 2 x overscan). */
  readonly rowCount: number;
  /** Removes the rows, the spacer and every listener. Idempotent. */
  dispose(): void;
}

/**
 * Mounts a windowed list in `viewport`. Rows carry `data-row="<index>"`,
 * `role="row"` and `aria-rowindex`; the viewport gets `role="table"` with
 * `aria-rowcount`, is focusable, and scrolls with the arrow keys,
 * Page Up/Down, Home and End.
 */
export function createVirtualList(options: VirtualListOptions): VirtualList {
  const { viewport } = options;
  const itemHeight = options.itemHeight;
  const overscan = options.overscan ?? 6;
  const ariaRowOffset = options.ariaRowOffset ?? 0;
  const doc = viewport.ownerDocument;
  const createRow =
    options.createRow ??
    (() => {
      const row = doc.createElement('div');
      row.setAttribute('role', 'row');
      return row;
    });
  let itemCount = Math.max(0, Math.floor(options.itemCount));
  let disposed = false;
  let frame: number | null = null;
  let range: VirtualRange = computeVirtualRange({ itemCount, itemHeight, viewportHeight: 0, scrollTop: 0, overscan });

  if (!viewport.style.overflowY) viewport.style.overflowY = 'auto';
  if (!viewport.style.position) viewport.style.position = 'relative';
  viewport.setAttribute('role', viewport.getAttribute('role') ?? 'table');
  if (options.label) viewport.setAttribute('aria-label', options.label);
  if (!viewport.hasAttribute('tabindex')) viewport.tabIndex = 0;

  const spacer = doc.createElement('div');
  spacer.setAttribute('role', 'rowgroup');
  spacer.style.position = 'relative';
  spacer.style.width = '100%';
  viewport.appendChild(spacer);

  /** Rows in the DOM by the index they show, and detached rows ready for reuse. */
  const active = new Map<number, HTMLElement>();
  const free: HTMLElement[] = [];

  const placeRow = (row: HTMLElement, index: number) => {
    row.dataset.row = String(index);
    row.setAttribute('aria-rowindex', String(index + 1 + ariaRowOffset));
    row.style.position = 'absolute';
    row.style.left = '0';
    row.style.right = '0';
    row.style.height = `${itemHeight}px`;
    row.style.transform = `translateY(${index * itemHeight}px)`;
    options.renderRow(row, index);
  };

  const render = () => {
    frame = null;
    if (disposed) return;
    range = computeVirtualRange({ itemCount, itemHeight, viewportHeight: viewport.clientHeight, scrollTop: viewport.scrollTop, overscan });
    spacer.style.height = `${range.totalHeight}px`;
    viewport.setAttribute('aria-rowcount', String(itemCount + ariaRowOffset));
    // Recycle rows that scrolled out of the range.
    for (const [index, row] of active) {
      if (index < range.start || index >= range.end) {
        active.delete(index);
        free.push(row);
      }
    }
    for (let index = range.start; index < range.end; index++) {
      if (active.has(index)) continue;
      const row = free.pop() ?? createRow();
      if (!row.isConnected) spacer.appendChild(row);
      placeRow(row, index);
      active.set(index, row);
    }
    // Whatever was not reused leaves the DOM: the pool never outgrows one range.
    for (const row of free) {
      row.remove();
      options.destroyRow?.(row);
    }
    free.length = 0;
  };

  const scheduleRender = () => {
    if (disposed || frame !== null) return;
    frame = requestAnimationFrame(render);
  };

  const onKey = (event: KeyboardEvent) => {
    const page = Math.max(itemHeight, viewport.clientHeight - itemHeight);
    const moves: Record<string, number> = {
      ArrowDown: itemHeight,
      ArrowUp: -itemHeight,
      PageDown: page,
      PageUp: -page,
      Home: -Infinity,
      End: Infinity,
    };
    const move = moves[event.key];
    if (move === undefined || event.target !== viewport) return;
    event.preventDefault();
    viewport.scrollTop = move === Infinity ? range.totalHeight : move === -Infinity ? 0 : viewport.scrollTop + move;
    scheduleRender();
  };

  viewport.addEventListener('scroll', scheduleRender, { passive: true });
  viewport.addEventListener('keydown', onKey);
  const resizeObserver = typeof ResizeObserver === 'function' ? new ResizeObserver(scheduleRender) : null;
  resizeObserver?.observe(viewport);
  render();

  return {
    setItemCount(count) {
      itemCount = Math.max(0, Math.floor(count));
      // Rows past the new end must not keep stale content.
      for (const [index, row] of active) {
        if (index >= itemCount) {
          active.delete(index);
          row.remove();
          options.destroyRow?.(row);
        }
      }
      render();
    },
    refresh() {
      if (disposed) return;
      for (const [index, row] of active) options.renderRow(row, index);
    },
    scrollToIndex(index, align = 'nearest') {
      const clamped = Math.max(0, Math.min(itemCount - 1, Math.floor(index)));
      const top = clamped * itemHeight;
      const bottom = top + itemHeight;
      const height = viewport.clientHeight;
      if (align === 'start' || (align === 'nearest' && top < viewport.scrollTop)) viewport.scrollTop = top;
      else if (align === 'end' || (align === 'nearest' && bottom > viewport.scrollTop + height)) viewport.scrollTop = bottom - height;
      render();
    },
    get range() {
      return range;
    },
    get rowCount() {
      return active.size;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      if (frame !== null) cancelAnimationFrame(frame);
      frame = null;
      viewport.removeEventListener('scroll', scheduleRender);
      viewport.removeEventListener('keydown', onKey);
      resizeObserver?.disconnect();
      for (const row of active.values()) options.destroyRow?.(row);
      active.clear();
      spacer.remove();
    },
  };
}
