/** One notice line under the header (role=alert): the result of the last action. */
import { byId } from './dom.js';

let timer: ReturnType<typeof setTimeout> | null = null;

export function notify(message: string, kind: 'error' | 'ok' = 'error'): void {
  const element = byId('notice');
  element.textContent = message;
  element.className = kind === 'ok' ? 'notice ok' : 'notice';
  element.hidden = false;
  if (timer !== null) clearTimeout(timer);
  // Errors stay until the next action; confirmations fade after a while.
  timer = kind === 'ok' ? setTimeout(() => (element.hidden = true), 6000) : null;
}
