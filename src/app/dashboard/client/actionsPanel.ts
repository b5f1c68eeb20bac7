/**
 * The live view's Actions panel: what the coordinator and the model governor
 * did in the last hour (or, observe-only, would have done), newest first,
 * with memory before → after and when an action was undone. Polls
 * `GET /api/actions?since=1h` while the view is shown, and soon after a
 * pressure change (when the coordinator acts). At most `MAX_ACTIONS` items,
 * reused by id; text is written only when it changed (an item changes when
 * "after" is measured, the action is undone or fails).
 */
import { api, ApiError, describeError } from './api.js';
import { actionState, actionTarget, changeText, memoryText, STATE_LABELS, type ActionRow, type ActionsBody, type ActionState } from './actionText.js';
import { card, h, setText } from './dom.js';
import { formatTime } from './format.js';

/** Items shown (and asked for). */
export const MAX_ACTIONS = 50;
const POLL_MS = 5000;
/** After a pressure change: long enough for the coordinator to decide and record. */
const AFTER_PRESSURE_MS = 1500;

interface Item {
  li: HTMLLIElement;
  chip: HTMLElement;
  kind: HTMLElement;
  target: HTMLElement;
  time: HTMLElement;
  memory: HTMLElement;
  change: HTMLElement;
  why: HTMLElement;
}

export interface ActionsPanel {
  readonly card: HTMLElement;
  /** Fetch again shortly (a pressure change: the coordinator acts on it). */
  refreshSoon(): void;
  setVisible(visible: boolean): void;
  dispose(): void;
}

export function createActionsPanel(): ActionsPanel {
  const sub = h('span', { class: 'sub', id: 'actions-summary' });
  const list = h('ul', { class: 'action-list', id: 'actions-list', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  const empty = h('p', { class: 'empty', text: 'No actions in the last hour.', hidden: true });
  const note = h('p', { class: 'unavailable', hidden: true });
  const panel = card('Actions', 'coordinator-actions-card', sub);
  panel.body.append(list, empty, note);

  const items = new Map<number, Item>();
  let visible = true;
  let disposed = false;
  let available = true;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let soon: ReturnType<typeof setTimeout> | null = null;
  let inFlight: AbortController | null = null;

  const buildItem = (id: number): Item => {
    const chip = h('span', { class: 'chip' });
    const kind = h('strong', { class: 'kind' });
    const target = h('span', { class: 'muted target' });
    const time = h('time', { class: 'small muted when' });
    const memory = h('span', { class: 'memory' });
    const change = h('span', { class: 'change' });
    const why = h('div', { class: 'small muted why' });
    const li = h(
      'li',
      { class: 'action', 'data-action-id': id },
      h('div', { class: 'action-head' }, time, chip, kind, target),
      h('div', { class: 'small action-memory' }, memory, change),
      why,
    );
    return { li, chip, kind, target, time, memory, change, why };
  };

  const renderItem = (item: Item, a: ActionRow) => {
    const state: ActionState = actionState(a);
    if (item.li.dataset.state !== state) {
      item.li.dataset.state = state;
      item.li.className = `action state-${state}`;
      item.chip.className = `chip state-${state}`;
    }
    setText(item.chip, STATE_LABELS[state]);
    setText(item.kind, a.kind);
    setText(item.target, actionTarget(a));
    setText(item.time, formatTime(a.atMs));
    item.time.setAttribute('datetime', new Date(a.atMs).toISOString());
    setText(item.memory, `${a.target ?? 'memory'} ${memoryText(a.componentBytesBefore, a.componentBytesAfter, a.measuredAtMs)}`);
    const change = changeText(a);
    setText(item.change, change ? ` (${change})` : '');
    const tail = [
      `${a.source}${a.level ? ` at ${a.level}` : ''}`,
      state === 'observe' ? 'not executed' : '',
      a.error ? `error: ${a.error}` : '',
      a.undoneAtMs !== null ? `undone ${formatTime(a.undoneAtMs)}` : '',
      a.reason,
    ].filter(Boolean);
    setText(item.why, tail.join(' · '));
  };

  const render = (body: ActionsBody) => {
    const shown = body.actions.slice(0, MAX_ACTIONS);
    const keep = new Set(shown.map((a) => a.id));
    for (const [id, item] of items) {
      if (!keep.has(id)) {
        item.li.remove();
        items.delete(id);
      }
    }
    shown.forEach((a, index) => {
      let item = items.get(a.id);
      if (!item) {
        item = buildItem(a.id);
        items.set(a.id, item);
      }
      renderItem(item, a);
      // Newest first; an item already in place is not moved (a move would be announced again by the live region).
      const at = list.children[index] ?? null;
      if (at !== item.li) list.insertBefore(item.li, at);
    });
    const executed = shown.filter((a) => a.executed).length;
    const observe = shown.length - executed;
    setText(
      sub,
      shown.length === 0
        ? 'last hour'
        : `last hour: ${body.truncated ? `newest ${shown.length}` : shown.length} · ${executed} executed${observe ? ` · ${observe} observe-only` : ''}`,
    );
    empty.hidden = shown.length > 0;
    note.hidden = true;
    list.hidden = false;
  };

  const schedule = (ms: number) => {
    if (timer !== null) clearTimeout(timer);
    timer = disposed || !available ? null : setTimeout(() => void poll(), ms);
  };

  const poll = async () => {
    timer = null;
    if (disposed || !available) return;
    if (visible && !document.hidden && inFlight === null) {
      const controller = new AbortController();
      inFlight = controller;
      try {
        render(await api<ActionsBody>(`/api/actions?since=1h&limit=${MAX_ACTIONS}`, { signal: controller.signal }));
      } catch (error) {
        if (disposed || (error as Error).name === 'AbortError') return;
        // An older runner without the endpoint: say so once and stop asking. History off and no coordinator (503): keep asking.
        if (error instanceof ApiError && error.unavailable && error.status === 404) available = false;
        note.hidden = false;
        setText(note, describeError('Actions', error));
        empty.hidden = true;
        list.hidden = items.size === 0;
      } finally {
        if (inFlight === controller) inFlight = null;
      }
    }
    schedule(POLL_MS);
  };
  void poll();

  return {
    card: panel.card,
    refreshSoon() {
      if (disposed || soon !== null) return;
      soon = setTimeout(() => {
        soon = null;
        schedule(0);
      }, AFTER_PRESSURE_MS);
    },
    setVisible(value) {
      const was = visible;
      visible = value;
      if (visible && !was) schedule(0);
    },
    dispose() {
      disposed = true;
      if (timer !== null) clearTimeout(timer);
      if (soon !== null) clearTimeout(soon);
      inFlight?.abort();
      items.clear();
    },
  };
}
