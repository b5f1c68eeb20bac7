/** Argument parsing shared by the commands: node's parseArgs, with errors that name the flag. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  readonly code = 'MEMTIDE_ERR_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Flags every command that loads config understands. */
export const CONFIG_FLAGS = {
  config: { type: 'string', short: 'c' },
  set: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

type Parsed<T extends NonNullable<ParseArgsConfig['options']>> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
>;

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T): Parsed<T> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** `--since 1h` → milliseconds; errors name the flag. */
export function durationFlag(name: string, value: string | undefined, parse: (text: string) => number | null, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parse(value);
  if (ms === null) throw new UsageError(`--${name}: not a duration: "${value}" (use e.g. 30m, 1h, 24h, 7d)`);
  return ms;
}

export function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`--${name}: expected one of ${allowed.join(', ')}, got "${value}"`);
}
