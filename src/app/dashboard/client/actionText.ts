/**
 * The coordinator's and the governor's actions as `GET /api/actions`
 * answers them, and the words the live panel and the history list show for
 * them.
 */
import type { StoredAction } from '../../../actionTypes.js';
import { formatBytes } from './format.js';

/** One action as `GET /api/actions` answers it (the history store's record: src/actionTypes.ts is free of Node). */
export type ActionRow = StoredAction;

export interface ActionsBody {
  sinceMs: number;
  untilMs: number | null;
  limit: number;
  truncated: boolean;
  /** Newest first. */
  actions: ActionRow[];
}

export type ActionState = 'executed' | 'observe' | 'failed';

export function actionState(a: ActionRow): ActionState {
  return !a.executed ? 'observe' : a.error ? 'failed' : 'executed';
}

export const STATE_LABELS: Record<ActionState, string> = { executed: 'executed', observe: 'observe-only', failed: 'failed' };

/** `ollama: llama3.1:8b (5.2 GiB)`, or whichever of the two there is. */
export function actionTarget(a: ActionRow): string {
  if (a.target !== null && a.detail !== null) return `${a.target}: ${a.detail}`;
  return a.target ?? a.detail ?? '';
}

/** `5.5 GiB → 300 MiB`, `5.5 GiB → measuring…` until the settle time has passed, `–` without a reading. */
export function memoryText(before: number | null, after: number | null, measuredAtMs: number | null): string {
  if (before === null && after === null) return measuredAtMs === null ? '–' : 'not read';
  return `${formatBytes(before)} → ${after !== null ? formatBytes(after) : measuredAtMs === null ? 'measuring…' : 'not read'}`;
}

function signed(bytes: number): string {
  return `${bytes > 0 ? '+' : bytes < 0 ? '-' : '±'}${formatBytes(Math.abs(bytes))}`;
}

/** The measured change: `freed 5.2 GiB · available +5.1 GiB` (empty until measured). */
export function changeText(a: ActionRow): string {
  const parts: string[] = [];
  if (a.componentBytesBefore !== null && a.componentBytesAfter !== null) {
    const freed = a.componentBytesBefore - a.componentBytesAfter;
    parts.push(freed > 0 ? `freed ${formatBytes(freed)}` : freed < 0 ? `grew ${formatBytes(-freed)}` : 'no change');
  }
  if (a.availableBytesBefore !== null && a.availableBytesAfter !== null) parts.push(`available ${signed(a.availableBytesAfter - a.availableBytesBefore)}`);
  return parts.join(' · ');
}
