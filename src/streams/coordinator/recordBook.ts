/**
 * The coordinator's record book: every action gets a record with memory
 * before (the latest sample) and, once `settleMs` has passed, memory after
 * (the first sample at or past that time: no timer of its own, so a stopped
 * sampler leaves "after" empty rather than wrong). Records are immutable
 * snapshots; each change is a new snapshot on `emit`.
 */
import type { MemorySample } from '../../model.js';
import type { ActionEntry } from '../../sinks/historyStore.js';
import type { ActionEvent, ActionRecord } from './types.js';

/** What a new record needs; memory and the rest are filled in. */
export type NewAction = Pick<ActionEntry, 'source' | 'kind' | 'level' | 'target' | 'detail' | 'reason' | 'executed'> & { atMs?: number };

export interface RecordBook {
  /**
   * Records a decision now, measuring memory before from `sample`. An `open`
   * record (an action in force, to be undone later) is kept until undone.
   */
  add(action: NewAction, sample: MemorySample | null, settleMs: number, open?: boolean): ActionRecord;
  /** Fills "memory after" of the records due by now. */
  measure(sample: MemorySample): void;
  undo(id: number): ActionRecord | null;
  fail(id: number, error: unknown): void;
  get(id: number): ActionRecord | undefined;
  /** The latest records, newest first. */
  recent(limit: number): ActionRecord[];
}

/** Records kept in memory for `recent` (the table keeps everything). */
export const RECENT_RECORDS = 500;

const componentBytes = (sample: MemorySample | null, target: string | null) => (sample && target !== null ? (sample.components[target]?.rssBytes ?? null) : null);

export function createRecordBook(now: () => number, emit: (event: ActionEvent) => void, keep = RECENT_RECORDS): RecordBook {
  const records = new Map<number, ActionRecord>();
  const due = new Map<number, number>();
  /** Records of actions in force: never dropped before they are undone. */
  const open = new Set<number>();
  let nextId = 1;

  const put = (type: ActionEvent['type'], record: ActionRecord) => {
    records.set(record.id, record);
    // Oldest out first (a Map keeps insertion order), skipping open ones.
    if (records.size > keep + open.size) {
      for (const id of records.keys()) {
        if (records.size <= keep + open.size) break;
        if (open.has(id)) continue;
        records.delete(id);
        due.delete(id);
      }
    }
    emit({ type, record, final: !due.has(record.id) && !open.has(record.id) });
    return record;
  };

  return {
    add(action, sample, settleMs, keepOpen = false) {
      const atMs = action.atMs ?? now();
      const record: ActionRecord = {
        id: nextId++,
        atMs,
        source: action.source,
        kind: action.kind,
        level: action.level,
        target: action.target,
        detail: action.detail,
        reason: action.reason,
        executed: action.executed,
        error: null,
        componentBytesBefore: componentBytes(sample, action.target),
        availableBytesBefore: sample?.system.availableBytes ?? null,
        componentBytesAfter: null,
        availableBytesAfter: null,
        measuredAtMs: null,
        undoneAtMs: null,
      };
      due.set(record.id, atMs + Math.max(0, settleMs));
      if (keepOpen) open.add(record.id);
      return put('recorded', record);
    },
    measure(sample) {
      const at = now();
      for (const [id, dueAt] of due) {
        if (dueAt > at) continue;
        due.delete(id);
        const record = records.get(id);
        if (!record) continue;
        put('measured', {
          ...record,
          componentBytesAfter: componentBytes(sample, record.target),
          availableBytesAfter: sample.system.availableBytes,
          measuredAtMs: at,
        });
      }
    },
    undo(id) {
      const record = records.get(id);
      open.delete(id);
      if (!record || record.undoneAtMs !== null) return null;
      return put('undone', { ...record, undoneAtMs: now() });
    },
    fail(id, error) {
      const record = records.get(id);
      if (!record) return;
      put('failed', { ...record, error: error instanceof Error ? error.message : String(error) });
    },
    get: (id) => records.get(id),
    recent: (limit) => [...records.values()].slice(-Math.max(0, limit)).reverse(),
  };
}
