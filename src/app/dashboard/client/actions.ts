/**
 * The one-click actions: each calls the API with the token and reports the
 * outcome in the notice line. Recommendations from alerts carry a command
 * (`memtide models unload X`, `--set key=value`); `recommendationAction`
 * turns the ones the API can carry out into a button.
 */
import { api, describeError } from './api.js';
import { notify } from './notice.js';

export const PRESET_CHOICES = ['auto', '4gb', '8gb', '16gb'] as const;
/** The levels `POST /api/actions/optimization-level` accepts (src/app/routes/actions.ts). */
export const OPTIMIZATION_LEVELS = ['basic', 'aggressive', 'maximum'] as const;

async function run(label: string, call: () => Promise<unknown>, done: string): Promise<boolean> {
  try {
    await call();
    notify(done, 'ok');
    return true;
  } catch (error) {
    notify(describeError(label, error));
    return false;
  }
}

const segment = (name: string) => encodeURIComponent(name);

export const unloadModel = (name: string) =>
  run(`Unloading ${name}`, () => api(`/api/models/${segment(name)}/unload`, { method: 'POST', body: {} }), `Asked to unload ${name}.`);
export const pinModel = (name: string, pin: boolean) =>
  run(`${pin ? 'Pinning' : 'Unpinning'} ${name}`, () => api(`/api/models/${segment(name)}/${pin ? 'pin' : 'unpin'}`, { method: 'POST', body: {} }), `${name} ${pin ? 'pinned' : 'unpinned'}.`);
export const setPreset = (preset: string) =>
  run('Switching the preset', () => api('/api/actions/preset', { method: 'POST', body: { preset } }), `Pressure preset set to ${preset}.`);
export const setLowMemory = (enabled: boolean) =>
  run(`${enabled ? 'Enabling' : 'Disabling'} low-memory mode`, () => api('/api/actions/low-memory', { method: 'POST', body: { enabled } }), `Low-memory mode ${enabled ? 'on' : 'off'}.`);
export const setOptimizationLevel = (level: string) =>
  run('Setting the optimization level', () => api('/api/actions/optimization-level', { method: 'POST', body: { level } }), `Optimization level set to ${level}.`);
export const acknowledgeAlert = (key: string) =>
  run('Acknowledging the alert', () => api(`/api/alerts/${segment(key)}/ack`, { method: 'POST', body: {} }), 'Alert acknowledged.');
export const patchConfig = (patch: unknown, what: string) => run(`Applying ${what}`, () => api('/api/config', { method: 'PATCH', body: patch }), `${what} applied.`);

/** `{ a: { b: value } }` for `a.b`. */
export function patchAt(dotted: string, value: unknown): Record<string, unknown> {
  return dotted
    .split('.')
    .reverse()
    .reduce<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;
}

/** `--set` values as the CLI reads them: JSON when it parses (numbers, booleans, quoted strings), else the text. */
function parseSetValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function unquoteShellWord(word: string): string {
  return word.startsWith("'") && word.endsWith("'") ? word.slice(1, -1).replaceAll("'\\''", "'") : word;
}

export interface RecommendationButton {
  label: string;
  run(): Promise<boolean>;
}

/** A button for a recommendation's command, when the API can do it; null for advice only. */
export function recommendationAction(command: string | undefined): RecommendationButton | null {
  if (!command) return null;
  const unload = /^memtide models unload (.+)$/.exec(command.trim());
  if (unload?.[1]) {
    const name = unquoteShellWord(unload[1].trim());
    return { label: `Unload ${name}`, run: () => unloadModel(name) };
  }
  const set = /^--set ([\w.]+)=(.+)$/.exec(command.trim());
  if (!set?.[1] || set[2] === undefined) return null;
  const key = set[1];
  const value = parseSetValue(set[2]);
  if (key === 'pressure.preset' && typeof value === 'string') return { label: `Switch preset to ${value}`, run: () => setPreset(value) };
  if (/lowMemory$/i.test(key) && typeof value === 'boolean') return { label: value ? 'Enable low-memory mode' : 'Disable low-memory mode', run: () => setLowMemory(value) };
  if (/optimization\.level$/.test(key) && typeof value === 'string') return { label: `Set optimization level ${value}`, run: () => setOptimizationLevel(value) };
  return { label: `Set ${key} = ${set[2]}`, run: () => patchConfig(patchAt(key, value), `${key} = ${set[2]}`) };
}

/** Disables a button while its action runs (no double submits). */
export function actionButton(label: string, action: () => Promise<unknown>, className = 'btn'): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = className;
  button.textContent = label;
  button.addEventListener('click', () => {
    button.disabled = true;
    void action().finally(() => {
      button.disabled = false;
    });
  });
  return button;
}
