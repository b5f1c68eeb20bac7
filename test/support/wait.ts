/** Real-time waiting for tests that drive real timers, processes and sockets. */
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  /** How long to wait before failing (default 5 s). */
  timeoutMs?: number;
  /** How often to probe (default 20 ms). */
  pollMs?: number;
  /** Appended to the timeout error, e.g. a child's stderr, so a failure explains itself. */
  detail?: () => string;
}

/**
 * Polls `probe` until it returns something truthy and resolves with it; fails
 * naming `what` it waited for once `timeoutMs` has passed.
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | null | false, options: WaitOptions = {}): Promise<T> {
  const { timeoutMs = 5_000, pollMs = 20, detail } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `; ${detail()}` : ''}`);
    await sleep(pollMs);
  }
}
