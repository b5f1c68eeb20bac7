/**
 * The report's Actions section: every action of the range (the history's
 * `actions` table, written by the coordinator and the model governor), read
 * in pages of `ACTIONS_PAGE` newest first, so a month of actions costs one
 * page of memory: counts and sums run over all of them, the newest
 * `MAX_LISTED` are kept for the list.
 */
import { MAX_ACTIONS_QUERY, type StoredAction, type TimeRange } from '../../sinks/historyStore.js';
import type { ActionKindSummary, ActionSummary, ReportAction } from './types.js';

/** Rows read per query (the store reads a query whole, so this bounds the memory of one step). */
export const ACTIONS_PAGE = 1000;
/** Kinds summarised one by one; more (kinds are open text) merge into `other`. */
export const MAX_ACTION_KINDS = 30;

/** The part of `HistoryStore` read. */
export interface ActionsReader {
  actions(query: { sinceMs: number; untilMs?: number; limit?: number }): readonly StoredAction[];
}

/** The numbers of one action as the report shows it (the row's id is the database's business). */
export function reportActionOf(a: StoredAction): ReportAction {
  const both = (x: number | null, y: number | null) => x !== null && y !== null;
  return {
    atMs: a.atMs,
    source: a.source,
    kind: a.kind,
    level: a.level,
    target: a.target,
    detail: a.detail,
    reason: a.reason,
    executed: a.executed,
    error: a.error,
    componentBytesBefore: a.componentBytesBefore,
    componentBytesAfter: a.componentBytesAfter,
    availableBytesBefore: a.availableBytesBefore,
    availableBytesAfter: a.availableBytesAfter,
    measuredAtMs: a.measuredAtMs,
    undoneAtMs: a.undoneAtMs,
    freedBytes: both(a.componentBytesBefore, a.componentBytesAfter) ? a.componentBytesBefore! - a.componentBytesAfter! : null,
    availableChangeBytes: both(a.availableBytesBefore, a.availableBytesAfter) ? a.availableBytesAfter! - a.availableBytesBefore! : null,
  };
}

export function emptyActionSummary(): ActionSummary {
  return { listed: [], total: 0, executed: 0, notExecuted: 0, failed: 0, undone: 0, measured: 0, freedBytes: 0, grewBytes: 0, availableChangeBytes: 0, byKind: [] };
}

/**
 * Only executed, successful, measured actions count in the totals: an
 * observe-only action changed nothing, so the memory after it is what
 * happened anyway.
 */
function counts(a: ReportAction): boolean {
  return a.executed && a.error === null && a.measuredAtMs !== null && (a.freedBytes !== null || a.availableChangeBytes !== null);
}

export function readActions(store: ActionsReader, range: Required<TimeRange>, maxListed: number, pageSize = ACTIONS_PAGE): ActionSummary {
  const summary = emptyActionSummary();
  const kinds = new Map<string, ActionKindSummary>();
  const add = (stored: StoredAction) => {
    const a = reportActionOf(stored);
    summary.total++;
    if (a.executed) summary.executed++;
    else summary.notExecuted++;
    if (a.executed && a.error !== null) summary.failed++;
    if (a.undoneAtMs !== null) summary.undone++;
    const measured = counts(a);
    if (measured) {
      summary.measured++;
      if ((a.freedBytes ?? 0) > 0) summary.freedBytes += a.freedBytes ?? 0;
      else summary.grewBytes -= a.freedBytes ?? 0;
      summary.availableChangeBytes += a.availableChangeBytes ?? 0;
    }
    let key = `${a.source}\u0000${a.kind}`;
    if (!kinds.has(key) && kinds.size >= MAX_ACTION_KINDS) key = `${a.source}\u0000other`;
    let kind = kinds.get(key);
    if (!kind) {
      kind = { source: a.source, kind: key.slice(key.indexOf('\u0000') + 1), count: 0, executed: 0, freedBytes: 0 };
      kinds.set(key, kind);
    }
    kind.count++;
    if (a.executed) kind.executed++;
    if (measured && (a.freedBytes ?? 0) > 0) kind.freedBytes += a.freedBytes ?? 0;
    if (summary.listed.length < maxListed) summary.listed.push(a);
  };

  // Newest first, a page at a time. The next page ends just after the oldest time seen (actions of one
  // millisecond may straddle pages), skipping the ids already counted at that millisecond.
  let untilMs = range.untilMs;
  let seenAtBoundary = new Set<number>();
  let limit = pageSize;
  for (;;) {
    const page = store.actions({ sinceMs: range.sinceMs, untilMs, limit });
    let fresh = 0;
    for (const a of page) {
      if (a.atMs === untilMs - 1 && seenAtBoundary.has(a.id)) continue;
      add(a);
      fresh++;
    }
    const oldest = page.at(-1);
    if (page.length < limit || oldest === undefined) break;
    if (fresh === 0) {
      // A whole page of one millisecond, already counted: read a larger page (no real coordinator gets here).
      if (limit < MAX_ACTIONS_QUERY) {
        limit = Math.min(MAX_ACTIONS_QUERY, limit * 2);
        continue;
      }
      // More than the store answers at once in one millisecond: the rest of it is skipped.
      untilMs = oldest.atMs;
      seenAtBoundary = new Set();
      continue;
    }
    limit = pageSize;
    const boundary = new Set(oldest.atMs === untilMs - 1 ? seenAtBoundary : []);
    for (const a of page) if (a.atMs === oldest.atMs) boundary.add(a.id);
    seenAtBoundary = boundary;
    untilMs = oldest.atMs + 1;
  }
  summary.listed.reverse(); // oldest first, like the other lists
  summary.byKind = [...kinds.values()].sort((a, b) => b.count - a.count || (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0));
  return summary;
}
