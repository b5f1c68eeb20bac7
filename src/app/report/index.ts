/** Memory reports from history: build once (streaming the store), render as Markdown, HTML or JSON. */
export { buildReport, ReportError, MAX_LISTED, MAX_SEGMENTS, type BuildReportOptions } from './build.js';
export { ACTIONS_PAGE, MAX_ACTION_KINDS, readActions, reportActionOf } from './actions.js';
export { renderMarkdown } from './markdown.js';
export { renderHtml } from './html.js';
export { renderJson } from './json.js';
export { Downsampler, RunningStats, MAX_CHART_POINTS } from './series.js';
export { DEFAULT_TREND_THRESHOLD_BYTES_PER_HOUR, SUSPECT_STEADINESS, kendallTau, trendOf } from './trend.js';
export type * from './types.js';
