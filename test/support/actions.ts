import type { ActionEntry } from '../../src/sinks/historyStore.js';

/**
 * An action record as the coordinator stores it: at `high` pressure, on
 * ollama, executed without error, not measured, not undone. `fields` say what
 * the test is about.
 */
export function actionEntry(fields: Partial<ActionEntry> & Pick<ActionEntry, 'atMs' | 'kind'>): ActionEntry {
  return {
    source: 'coordinator',
    level: 'high',
    target: 'ollama',
    detail: null,
    reason: 'pressure high',
    executed: true,
    error: null,
    componentBytesBefore: null,
    availableBytesBefore: null,
    componentBytesAfter: null,
    availableBytesAfter: null,
    measuredAtMs: null,
    undoneAtMs: null,
    ...fields,
  };
}
