/** Reusable schema pieces: units, names, expressions. Imported by the root schema and every section. */
import { z } from 'zod';
import { parseBytes, parseDuration } from './units.js';

/** Milliseconds: a number, or a string such as "500ms", "5s", "10m", "24h", "30d". */
export function duration(description: string) {
  return z
    .union([z.number().int().nonnegative(), z.string()])
    .transform((value, ctx) => {
      if (typeof value === 'number') return value;
      const ms = parseDuration(value);
      if (ms === null) {
        ctx.addIssue({ code: 'custom', message: `not a duration: "${value}" (use e.g. 500ms, 5s, 10m, 24h, 30d)` });
        return z.NEVER;
      }
      return ms;
    })
    .describe(description);
}

/** Bytes: a number, or a string such as "512MB", "6GB", "1.5GiB". */
export function bytes(description: string) {
  return z
    .union([z.number().int().nonnegative(), z.string()])
    .transform((value, ctx) => {
      if (typeof value === 'number') return value;
      const size = parseBytes(value);
      if (size === null) {
        ctx.addIssue({ code: 'custom', message: `not a size: "${value}" (use e.g. 512MB, 6GB, 1.5GiB)` });
        return z.NEVER;
      }
      return size;
    })
    .describe(description);
}

export const regex = (description: string) =>
  z
    .string()
    .min(1)
    .refine((source) => {
      try {
        new RegExp(source);
        return true;
      } catch {
        return false;
      }
    }, 'not a valid regular expression')
    .describe(description);

export const percent = (description: string) => z.number().min(0).max(100).nullable().optional().describe(description);

export const componentName = z
  .string()
  .regex(/^[a-z][a-z0-9_.-]{0,39}$/, 'lower-case letters, digits, "_", "-", "." (max 40), starting with a letter');

