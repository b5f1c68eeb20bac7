/** Tiny DOM helpers: build elements without innerHTML (no injection from data). */

type Attrs = Record<string, string | number | boolean | null | undefined>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') element.className = String(value);
    else if (name === 'text') element.textContent = String(value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) element.append(child);
  return element;
}

/** Sets text only when it changed (no layout work, no garbage for identical updates). */
export function setText(element: Element, text: string): void {
  if (element.textContent !== text) element.textContent = text;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`dashboard: #${id} is missing from the page`);
  return element as T;
}

/** A card with a heading; returns the card and its body. */
export function card(title: string, id: string, sub?: HTMLElement): { card: HTMLElement; body: HTMLElement; heading: HTMLElement } {
  const heading = h('h2', { id: `${id}-title` }, title, sub ?? null);
  const body = h('div', { class: 'card-body' });
  const element = h('section', { class: 'card', id, 'aria-labelledby': `${id}-title` }, heading, body);
  return { card: element, body, heading };
}
