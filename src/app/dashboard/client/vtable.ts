/**
 * A virtualised table on the kit's `createVirtualList`: a header row and a
 * scrolling body whose row elements (with their cells) are created once and
 * reused, so 100,000 records cost one screenful of DOM. Rows whose data is
 * not loaded yet show "loading…" and ask the source for their range.
 */
import { createVirtualList, type VirtualList } from '../../../browser/virtualList.js';
import { h } from './dom.js';

export interface Column<R> {
  label: string;
  /** CSS grid track, e.g. `190px` or `minmax(0, 2fr)`. */
  width: string;
  value(row: R): string;
  align?: 'left' | 'right';
}

export interface RowSource<R> {
  readonly count: number;
  /** The row if loaded. */
  row(index: number): R | undefined;
  /** Rows `start .. end - 1` are on screen and not loaded: fetch them (called once per such row and render; batch). */
  request(start: number, end: number): void;
}

export const ROW_HEIGHT = 30;

export interface VirtualTable {
  readonly element: HTMLElement;
  readonly list: VirtualList;
  setCount(count: number): void;
  refresh(): void;
  dispose(): void;
}

export function createVirtualTable<R>(parent: HTMLElement, options: { id: string; label: string; columns: Column<R>[]; source: RowSource<R> }): VirtualTable {
  const { columns, source } = options;
  const template = columns.map((c) => c.width).join(' ');
  const head = h('div', { class: 'vhead', role: 'row', 'aria-rowindex': 1 });
  head.style.gridTemplateColumns = template;
  for (const c of columns) {
    const cell = h('span', { role: 'columnheader', text: c.label });
    if (c.align === 'left') cell.style.textAlign = 'left';
    head.append(cell);
  }
  const viewport = h('div', { class: 'vlist', id: options.id });
  const wrapper = h('div', { class: 'vtable' }, head, viewport);
  parent.append(wrapper);
  // The header is part of the table for assistive technology.
  viewport.setAttribute('aria-describedby', `${options.id}-desc`);
  wrapper.append(h('p', { id: `${options.id}-desc`, class: 'visually-hidden', text: `${options.label}. Use the arrow keys, Page Up, Page Down, Home and End to scroll.` }));

  const list = createVirtualList({
    viewport,
    itemCount: source.count,
    itemHeight: ROW_HEIGHT,
    overscan: 8,
    label: options.label,
    ariaRowOffset: 1,
    createRow() {
      const row = h('div', { class: 'vrow', role: 'row' });
      row.style.gridTemplateColumns = template;
      for (const c of columns) {
        const cell = h('span', { role: 'cell' });
        if (c.align === 'left') cell.style.textAlign = 'left';
        row.append(cell);
      }
      return row;
    },
    renderRow(element, index) {
      const data = source.row(index);
      const cells = element.children;
      if (data === undefined) {
        element.classList.add('loading');
        for (let i = 0; i < cells.length; i++) (cells[i] as HTMLElement).textContent = i === 0 ? 'loading…' : '';
        source.request(index, index + 1); // sources batch these (one fetch per page)
        return;
      }
      element.classList.remove('loading');
      columns.forEach((c, i) => {
        const cell = cells[i] as HTMLElement;
        const text = c.value(data);
        if (cell.textContent !== text) cell.textContent = text;
      });
    },
  });

  return {
    element: wrapper,
    list,
    setCount: (count) => list.setItemCount(count),
    refresh: () => list.refresh(),
    dispose() {
      list.dispose();
      wrapper.remove();
    },
  };
}
