/**
 * Human units for config and flags: durations ("500ms", "5s", "10m", "24h",
 * "30d") and byte sizes ("512MB", "6GB", "1.5GiB"). Plain numbers mean
 * milliseconds and bytes. Decimal and binary suffixes both exist in the wild
 * (Ollama prints GB, the kernel KiB), so both are accepted and kept apart.
 */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

/** Values past 2^53 are not exact any more (and "1e400" is Infinity): not a valid amount. */
const safe = (value: number): number | null => (Number.isSafeInteger(value) ? value : null);

/** Parses "1.5h" / "250ms" / "30" (ms); returns null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!match) return null;
  const unit = (match[2] ?? 'ms').toLowerCase();
  return safe(Math.round(Number(match[1]) * (DURATION_UNITS[unit] ?? 1)));
}

/** Parses "6GB" / "512MiB" / "4096" (bytes); returns null when the text is not a size. */
export function parseBytes(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*$/i.exec(text);
  if (!match) return null;
  const factor = BYTE_UNITS[(match[2] ?? 'b').toLowerCase()];
  if (factor === undefined) return null;
  return safe(Math.round(Number(match[1]) * factor));
}

/** Short human form of a duration for logs and reports ("1h30m", "45s"). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.slice(0, 2).join('');
}

/** Human bytes in binary units ("1.5 GiB"), the way the kernel and `free -h` count. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const sign = bytes < 0 ? '-' : '';
  return `${sign}${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}
