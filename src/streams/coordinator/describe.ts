/** Words for action records, for logs and reports. */
import type { ActionRecord } from './types.js';

const LABELS: Record<string, string> = {
  'unload-idle-models': 'unload idle models',
  'lower-transcription-concurrency': 'lower transcription concurrency',
  'shrink-caches': 'shrink caches',
  'disable-live-summaries': 'disable live summaries',
  'cap-model-budget': 'cap the model budget',
  'cap-transcription-concurrency': 'cap transcription concurrency',
  'hold-batch': 'hold batch transcription',
  'resume-batch': 'resume batch transcription',
};

/** `unload idle models`, `cap the model budget`, ...; a governor kind as it is (`unload`, `hold`). */
export function actionLabel(kind: string): string {
  return LABELS[kind] ?? kind;
}

/** One line: `unload idle models at high (observe-only, not executed): pressure high ...`. */
export function describeRecord(record: ActionRecord): string {
  const detail = record.detail !== null && record.kind.startsWith('cap-') ? ` to ${record.detail}` : '';
  const where = record.level !== null ? ` at ${record.level}` : '';
  const observed = record.executed ? '' : ' (observe-only, not executed)';
  return `${actionLabel(record.kind)}${detail}${where}${observed}: ${record.reason}`;
}
