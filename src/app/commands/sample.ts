import { loadConfig } from '../config.js';
import { createSampler } from '../../sources/memorySampler.js';
import { createPlatformReaders } from '../../sources/readers.js';
import { levelOf, resolveThresholds, signalValues } from '../../operators/pressureThresholds.js';
import { sampleTable } from '../format.js';
import { CONFIG_FLAGS, oneOf, parse } from '../cliArgs.js';

export const sampleHelp = `memtide sample [--format json|table] [--config FILE] [--set KEY=VALUE]

Takes one sample of system memory and every process, attributed to components,
and prints it. JSON: { timestampMs, system, pressure, components, processes }.`;

export async function sampleCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parse(args, { ...CONFIG_FLAGS, format: { type: 'string', short: 'f' } });
  if (values.help) {
    out(`${sampleHelp}\n`);
    return 0;
  }
  const format = oneOf('format', values.format, ['json', 'table'] as const, 'json');
  const config = loadConfig({ file: values.config, set: values.set ?? [] });
  const sample = await createSampler({ readers: createPlatformReaders() }).sample(config);
  {
    // One sample has no history, so its level is the plain classification (no hysteresis to apply).
    const { thresholds } = resolveThresholds(config.pressure, sample.system.totalBytes);
    const pressure = levelOf(signalValues(sample.system), thresholds).level;
    if (format === 'table') {
      out(sampleTable(sample, pressure));
    } else {
      const { timestampMs, system, components, processes, self } = sample;
      out(`${JSON.stringify({ timestampMs, system, pressure, components, processes, self }, null, 2)}\n`);
    }
    return 0;
  }
}
