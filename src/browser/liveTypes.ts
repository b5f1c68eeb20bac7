/**
 * The shapes of the runner's live feed (`GET /api/events`, server-sent
 * events) as the browser sees them. They mirror `src/model.ts` (which is
 * Node-side code); test/browserKit.test.ts checks at compile time that the
 * two stay compatible.
 */

export const PRESSURE_LEVELS = ['low', 'medium', 'high', 'critical'] as const;
export type PressureLevel = (typeof PRESSURE_LEVELS)[number];

/** SSE event `pressure`. */
export interface PressureEvent {
  atMs: number;
  level: PressureLevel;
  previous: PressureLevel | null;
  reasons: string[];
}

export interface LiveComponentUsage {
  rssBytes: number;
  pssBytes: number | null;
  pssAnonBytes?: number | null;
  processCount: number;
}

export interface LiveSystemMemory {
  totalBytes: number;
  availableBytes: number;
  usedBytes: number;
  swapTotalBytes: number;
  swapUsedBytes: number;
  psi: { someAvg10: number; someAvg60: number; fullAvg10: number; fullAvg60: number } | null;
}

/** SSE event `sample`: a sample without its process list. */
export interface LiveSample {
  timestampMs: number;
  system: LiveSystemMemory;
  components: Record<string, LiveComponentUsage>;
  self?: { rssBytes: number; heapUsedBytes: number };
}
