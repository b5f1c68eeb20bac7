import { z } from 'zod';
import { loadConfig } from '../config.js';
import { configSchema } from '../configSchema.js';
import { CONFIG_FLAGS, UsageError, parse } from '../cliArgs.js';

export const configHelp = `memtide config --print [--config FILE] [--set KEY=VALUE]
memtide config --schema

--print   the effective configuration (defaults < file < MEMTIDE_* env < flags)
--schema  the JSON Schema of the config file (for editors and validation)`;

/** JSON Schema of what a user may write (units as strings allowed). */
export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' });
}

export async function configCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parse(args, { ...CONFIG_FLAGS, print: { type: 'boolean' }, schema: { type: 'boolean' } });
  if (values.help) {
    out(`${configHelp}\n`);
    return 0;
  }
  if (values.schema) {
    out(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    return 0;
  }
  if (values.print) {
    out(`${JSON.stringify(loadConfig({ file: values.config, set: values.set ?? [] }), null, 2)}\n`);
    return 0;
  }
  throw new UsageError('memtide config: give --print or --schema');
}
