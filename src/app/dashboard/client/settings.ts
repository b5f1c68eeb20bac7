/**
 * The settings view: a form generated from the config's JSON Schema
 * (`GET /api/config/schema`) filled with the live config (`GET /api/config`).
 * "Apply" sends only the changed fields as one JSON merge patch
 * (`PATCH /api/config`); the runner validates it with the one schema and
 * applies it from the next sample, without a restart. A 400 answer lists
 * every offending path: each message is shown under its field.
 */
import { api, ApiError, describeError, type FieldIssue } from './api.js';
import { actionButton, patchAt } from './actions.js';
import { card, h, setText } from './dom.js';
import { notify } from './notice.js';
import { clearToken, getToken, setToken } from './token.js';

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  enum?: Array<string | number | boolean | null>;
  description?: string;
  minimum?: number;
  maximum?: number;
  default?: unknown;
}

interface ConfigView {
  config: Record<string, unknown>;
  overrides: { values: Record<string, unknown>; paths: Array<{ path: string; origin: string }> };
  patchable: boolean;
}

/** Sections the runner reads once at start (src/app/routes/config.ts refuses runtime patches of them). */
const RESTART_ONLY = ['history', 'server'];

type Read = { ok: true; value: unknown } | { ok: false; message: string };

interface Field {
  path: string;
  row: HTMLElement;
  input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
  error: HTMLElement;
  read(): Read;
  write(value: unknown): void;
  initial: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function valueAt(root: unknown, path: string): unknown {
  let node = root;
  for (const key of path.split('.')) {
    if (!isObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

function mergeInto(target: Record<string, unknown>, patch: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(patch)) {
    const existing = target[key];
    if (isObject(existing) && isObject(value)) mergeInto(existing, value);
    else target[key] = value;
  }
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** What kind of control a schema node gets. */
function classify(node: JsonSchema): { kind: 'object' | 'enum' | 'boolean' | 'number' | 'integer' | 'string' | 'numberOrText' | 'json'; nullable: boolean; node: JsonSchema } {
  if (node.anyOf) {
    const nonNull = node.anyOf.filter((n) => n.type !== 'null');
    const nullable = nonNull.length < node.anyOf.length;
    const types = nonNull.map((n) => n.type);
    if (nonNull.length === 1 && nonNull[0]) return { ...classify({ ...nonNull[0], description: node.description }), nullable };
    if (types.length === 2 && types.includes('string') && (types.includes('integer') || types.includes('number'))) return { kind: 'numberOrText', nullable, node };
    return { kind: 'json', nullable, node };
  }
  if (node.enum) return { kind: 'enum', nullable: node.enum.includes(null), node };
  const type = Array.isArray(node.type) ? node.type.find((t) => t !== 'null') : node.type;
  const nullable = Array.isArray(node.type) && node.type.includes('null');
  if (type === 'object' && node.properties && !isObject(node.additionalProperties)) return { kind: 'object', nullable, node };
  if (type === 'boolean' || type === 'number' || type === 'integer' || type === 'string') return { kind: type, nullable, node };
  return { kind: 'json', nullable, node };
}

export interface SettingsView {
  show(): void;
}

export function createSettingsView(root: HTMLElement, onTokenChange: () => void): SettingsView {
  // --- token ----------------------------------------------------------------------------------
  const tokenState = h('p', { id: 'token-status' });
  const tokenInput = h('input', { type: 'password', id: 'token-input', autocomplete: 'off', spellcheck: 'false', size: 44 });
  const tokenCard = card('Access token', 'token-card');
  const renderToken = () => {
    setText(
      tokenState,
      getToken()
        ? 'This tab has the token: actions and setting changes are allowed. It is kept in this tab only (sessionStorage) and never put in a URL sent to the server.'
        : 'No token in this tab: you can look, not change. Open the URL that `memtide run` prints (it carries the token after #), or paste the token from the token file (server.tokenFile).',
    );
    onTokenChange();
  };
  tokenCard.body.append(
    tokenState,
    h(
      'div',
      { class: 'controls' },
      h('label', { for: 'token-input' }, 'Paste the token', tokenInput),
      actionButton('Use token', async () => {
        if (tokenInput.value.trim()) setToken(tokenInput.value.trim());
        tokenInput.value = '';
        renderToken();
      }),
      actionButton(
        'Forget token',
        async () => {
          clearToken();
          renderToken();
        },
        'btn secondary',
      ),
    ),
  );

  // --- config form ----------------------------------------------------------------------------
  const formNote = h('p', { class: 'unavailable', hidden: true, id: 'settings-note' });
  const overridesList = h('ul', { class: 'reasons', id: 'settings-overrides' });
  const form = h('form', { class: 'form', id: 'settings-form', novalidate: true, 'aria-describedby': 'settings-help' });
  const formErrors = h('ul', { class: 'notice', id: 'settings-errors', role: 'alert', hidden: true });
  const formStatus = h('span', { class: 'small muted', role: 'status', 'aria-live': 'polite' });
  const applyButton = h('button', { type: 'submit', class: 'btn', text: 'Apply changes' });
  const revertButton = h('button', { type: 'button', class: 'btn secondary', text: 'Revert' });
  const jsonPatch = h('textarea', { id: 'settings-json', rows: 5, spellcheck: 'false', placeholder: '{ "pressure": { "preset": "8gb" } }' });
  const jsonApply = h('button', { type: 'button', class: 'btn secondary', text: 'Apply JSON patch' });
  const configCard = card('Configuration', 'config-card', h('span', { class: 'sub', text: 'Applied from the next sample, no restart' }));
  configCard.body.append(
    h(
      'p',
      { class: 'small muted', id: 'settings-help' },
      'Edit a value and apply: only changed fields are sent, as one JSON merge patch. Runtime changes last until the runner stops (they are not written to the config file). Clearing a field returns it to the file’s value.',
    ),
    formNote,
    h('h3', { text: 'Changed at runtime' }),
    overridesList,
    formErrors,
    form,
    h(
      'details',
      {},
      h('summary', { text: 'Advanced: apply a JSON merge patch' }),
      h('label', { for: 'settings-json', class: 'small muted' }, 'Patch (RFC 7386: objects merge, null removes a runtime value)'),
      jsonPatch,
      h('div', { class: 'controls' }, jsonApply),
    ),
  );
  root.append(h('div', { class: 'grid' }, tokenCard.card, configCard.card));

  const fields = new Map<string, Field>();
  let view: ConfigView | null = null;
  let loaded = false;

  const fieldId = (path: string) => `cfg-${path.replace(/[^\w-]/g, '_')}`;

  const buildField = (path: string, name: string, node: JsonSchema, value: unknown, disabled: boolean): HTMLElement => {
    const { kind, node: inner } = classify(node);
    const id = fieldId(path);
    const help = h('div', { class: 'help', id: `${id}-help`, text: node.description ?? inner.description ?? '' });
    const error = h('div', { class: 'error', id: `${id}-error`, hidden: true });
    let input: Field['input'];
    let read: () => Read;
    let write: (v: unknown) => void;
    if (kind === 'enum') {
      const select = h('select', {}, ...(inner.enum ?? []).map((option) => h('option', { value: JSON.stringify(option), text: option === null ? '(none)' : String(option) })));
      input = select;
      read = () => ({ ok: true, value: JSON.parse(select.value) as unknown });
      write = (v) => (select.value = JSON.stringify(v ?? null));
    } else if (kind === 'boolean') {
      const box = h('input', { type: 'checkbox' });
      input = box;
      read = () => ({ ok: true, value: box.checked });
      write = (v) => (box.checked = v === true);
    } else if (kind === 'number' || kind === 'integer') {
      const number = h('input', { type: 'number', step: kind === 'integer' ? 1 : 'any', inputmode: 'decimal' });
      if (inner.minimum !== undefined) number.min = String(inner.minimum);
      if (inner.maximum !== undefined && inner.maximum < Number.MAX_SAFE_INTEGER) number.max = String(inner.maximum);
      input = number;
      read = () => {
        // Empty: null in the merge patch, which drops the runtime value (the file's applies again).
        if (number.value.trim() === '') return { ok: true, value: null };
        const n = Number(number.value);
        return Number.isFinite(n) ? { ok: true, value: n } : { ok: false, message: `"${number.value}" is not a number` };
      };
      write = (v) => (number.value = typeof v === 'number' ? String(v) : '');
    } else if (kind === 'numberOrText' || kind === 'string') {
      const text = h('input', { type: 'text', spellcheck: 'false' });
      input = text;
      read = () => {
        const raw = text.value.trim();
        if (raw === '') return { ok: true, value: null };
        // Durations and sizes accept a number (ms, bytes) or a text with a unit (5s, 512MiB).
        if (kind === 'numberOrText' && /^-?\d+(\.\d+)?$/.test(raw)) return { ok: true, value: Number(raw) };
        return { ok: true, value: kind === 'string' ? text.value : raw };
      };
      write = (v) => (text.value = v === null || v === undefined ? '' : String(v));
    } else {
      const area = h('textarea', { spellcheck: 'false', rows: 4 });
      input = area;
      read = () => {
        if (area.value.trim() === '') return { ok: true, value: null };
        try {
          return { ok: true, value: JSON.parse(area.value) as unknown };
        } catch (e) {
          return { ok: false, message: `not valid JSON: ${(e as Error).message}` };
        }
      };
      write = (v) => (area.value = v === undefined ? '' : JSON.stringify(v, null, 2));
    }
    input.id = id;
    input.name = path;
    input.disabled = disabled;
    input.setAttribute('aria-describedby', `${id}-help ${id}-error`);
    write(value);
    const row = h('div', { class: 'field', 'data-path': path }, h('label', { for: id, text: name }), input, help, error);
    fields.set(path, { path, row, input, error, read, write, initial: read().ok ? (read() as { value: unknown }).value : value });
    return row;
  };

  const buildSection = (path: string, name: string, node: JsonSchema, value: unknown, depth: number): HTMLElement => {
    const disabled = RESTART_ONLY.includes(path.split('.')[0] ?? '');
    const set = h('fieldset', { 'data-section': path }, h('legend', { text: depth === 0 ? name : `${path}` }));
    if (depth === 0 && node.description) set.append(h('p', { class: 'small muted', text: node.description }));
    if (depth === 0 && disabled) set.append(h('p', { class: 'small muted', text: 'Read once at start: edit the config file and restart to change these.' }));
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const childPath = path ? `${path}.${key}` : key;
      const childValue = valueAt(value, key);
      if (classify(child).kind === 'object') set.append(buildSection(childPath, key, child, childValue ?? {}, depth + 1));
      else set.append(buildField(childPath, key, child, childValue, disabled));
    }
    return set;
  };

  const clearErrors = () => {
    formErrors.hidden = true;
    formErrors.replaceChildren();
    for (const f of fields.values()) {
      f.error.hidden = true;
      f.error.textContent = '';
      f.input.removeAttribute('aria-invalid');
    }
  };

  /** Shows each issue under its field (or the nearest field above it); the rest in the list at the top. */
  const showIssues = (issues: FieldIssue[]) => {
    clearErrors();
    const unplaced: FieldIssue[] = [];
    let first: Field | undefined;
    for (const issue of issues) {
      let path = issue.path;
      let field = fields.get(path);
      while (!field && path.includes('.')) {
        path = path.slice(0, path.lastIndexOf('.'));
        field = fields.get(path);
      }
      if (!field) {
        unplaced.push(issue);
        continue;
      }
      field.error.hidden = false;
      field.error.textContent = field.error.textContent ? `${field.error.textContent}; ${issue.message}` : `${issue.path === field.path ? '' : `${issue.path}: `}${issue.message}`;
      field.input.setAttribute('aria-invalid', 'true');
      first ??= field;
    }
    if (unplaced.length) {
      formErrors.hidden = false;
      formErrors.replaceChildren(...unplaced.map((i) => h('li', { text: `${i.path || '(config)'}: ${i.message}` })));
    }
    first?.input.focus();
  };

  const renderOverrides = () => {
    const paths = view?.overrides.paths ?? [];
    overridesList.replaceChildren(
      ...(paths.length
        ? paths.map((o) =>
            h(
              'li',
              {},
              h('code', { text: o.path }),
              ` by ${o.origin} `,
              actionButton(`Reset`, () => apply(patchAt(o.path, null), `reset of ${o.path}`), 'btn secondary'),
            ),
          )
        : [h('li', { text: 'Nothing: the config is the file’s (and the environment’s and flags’).' })]),
    );
  };

  const fill = () => {
    if (!view) return;
    for (const f of fields.values()) {
      const value = valueAt(view.config, f.path);
      f.write(value);
      const read = f.read();
      f.initial = read.ok ? read.value : value;
    }
    renderOverrides();
    setText(formStatus, '');
  };

  const apply = async (patch: Record<string, unknown>, what: string): Promise<boolean> => {
    clearErrors();
    try {
      view = await api<ConfigView>('/api/config', { method: 'PATCH', body: patch });
      fill();
      notify(`Settings applied (${what}).`, 'ok');
      setText(formStatus, 'Applied.');
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.issues.length) {
        showIssues(error.issues);
        setText(formStatus, `${error.issues.length} problem${error.issues.length > 1 ? 's' : ''}: nothing was changed.`);
      } else {
        notify(describeError('Applying settings', error));
        setText(formStatus, describeError('Applying settings', error));
      }
      return false;
    }
  };

  form.addEventListener('submit', (event: Event) => {
    event.preventDefault();
    clearErrors();
    const patch: Record<string, unknown> = {};
    const local: FieldIssue[] = [];
    for (const f of fields.values()) {
      if (f.input.disabled) continue;
      const read = f.read();
      if (!read.ok) local.push({ path: f.path, message: read.message });
      else if (!same(read.value, f.initial)) mergeInto(patch, patchAt(f.path, read.value));
    }
    if (local.length) {
      showIssues(local);
      return;
    }
    if (Object.keys(patch).length === 0) {
      setText(formStatus, 'Nothing changed.');
      return;
    }
    applyButton.disabled = true;
    void apply(patch, Object.keys(patch).join(', ')).finally(() => (applyButton.disabled = false));
  });
  revertButton.addEventListener('click', () => {
    clearErrors();
    fill();
  });
  jsonApply.addEventListener('click', () => {
    let patch: unknown;
    try {
      patch = JSON.parse(jsonPatch.value);
    } catch (error) {
      jsonPatch.setAttribute('aria-invalid', 'true');
      notify(`The JSON patch is not valid JSON: ${(error as Error).message}`);
      return;
    }
    jsonPatch.removeAttribute('aria-invalid');
    if (!isObject(patch)) {
      notify('A JSON merge patch is an object, e.g. { "pressure": { "preset": "8gb" } }');
      return;
    }
    void apply(patch, 'JSON patch');
  });

  const load = async () => {
    loaded = true;
    formNote.hidden = true;
    try {
      const [schema, current] = await Promise.all([api<JsonSchema>('/api/config/schema'), api<ConfigView>('/api/config')]);
      view = current;
      fields.clear();
      form.replaceChildren();
      for (const [key, node] of Object.entries(schema.properties ?? {})) {
        form.append(classify(node).kind === 'object' ? buildSection(key, key, node, view.config[key] ?? {}, 0) : buildField(key, key, node, view.config[key], false));
      }
      form.append(h('div', { class: 'bar' }, applyButton, revertButton, formStatus));
      renderOverrides();
      if (!current.patchable) {
        formNote.hidden = false;
        formNote.textContent = 'This runner does not accept runtime changes (PATCH /api/config answers 501): the form shows the config in force; edit the config file instead.';
      }
    } catch (error) {
      loaded = false;
      formNote.hidden = false;
      formNote.textContent = describeError('Loading the config', error);
    }
  };

  renderToken();
  return {
    show() {
      if (!loaded) void load();
    },
  };
}
