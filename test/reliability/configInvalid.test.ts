/**
 * Reliability: the config file is edited into an invalid state while memtide
 * runs (a wrong value, a misspelt key, a half-written file). The last good
 * config stays in force, the error is reported on `configErrors$` naming the
 * key and logged, sampling goes on, and a later valid edit applies.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ConfigError, MemtideConfig } from '../../src/app/config.js';
import { createMemtide } from '../../src/app/memtide.js';
import type { Logger } from '../../src/sinks/logger.js';
import { createPlatformReaders } from '../../src/sources/readers.js';
import { stopAfterEach, tempDir } from '../support/lifecycle.js';
import { waitFor } from '../support/wait.js';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures');
const tmp = tempDir('memtide-badconfig-');
const { subscriptions, engines } = stopAfterEach();

describe('config edited into an invalid state while running', () => {
  it('keeps the last good config, reports and logs each bad edit by key, keeps sampling, and applies the next valid edit', async () => {
    const file = path.join(tmp, 'memtide.json');
    fs.writeFileSync(file, JSON.stringify({ sampling: { intervalMs: 100 }, pressure: { marginPercent: 5 } }));
    const errorLogs: string[] = [];
    const logger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m) => errorLogs.push(m) };
    const memtide = createMemtide({
      configFile: file,
      env: {},
      logger,
      readers: createPlatformReaders({ platform: 'linux', procRoot: path.join(FIXTURES, 'proc-tree'), sysRoot: path.join(FIXTURES, 'sys-v1') }),
    });
    engines.push(memtide);
    const errors: ConfigError[] = [];
    const configs: MemtideConfig[] = [];
    let samples = 0;
    const failures: unknown[] = [];
    subscriptions.push(
      memtide.configErrors$.subscribe({ next: (e) => errors.push(e), error: (e: unknown) => failures.push(e) }),
      memtide.config$.subscribe({ next: (c) => configs.push(c), error: (e: unknown) => failures.push(e) }),
      memtide.samples$.subscribe({ next: () => (samples += 1), error: (e: unknown) => failures.push(e) }),
      memtide.problems$.subscribe({ next: (p) => failures.push(p), error: (e: unknown) => failures.push(e) }),
    );
    await waitFor('the first sample', () => samples > 0);

    const badEdits: Array<[string, string, RegExp]> = [
      ['a wrong value', JSON.stringify({ sampling: { intervalMs: 'soon' }, pressure: { marginPercent: 5 } }), /sampling\.intervalMs: not a duration: "soon"/],
      ['a misspelt key', JSON.stringify({ sampling: { intervalMS: 50 }, pressure: { marginPercent: 5 } }), /sampling\.intervalMS: unknown key/],
      ['a value out of range', JSON.stringify({ sampling: { intervalMs: 100 }, pressure: { marginPercent: 90 } }), /pressure\.marginPercent: /],
      ['a half-written file', '{"sampling": {"intervalMs": 2', /\(root\): not valid JSON/],
    ];
    for (const [what, text, expected] of badEdits) {
      const before = { errors: errors.length, logs: errorLogs.length, samples };
      fs.writeFileSync(file, text);
      const error = await waitFor(`the report of ${what}`, () => errors[before.errors]);
      expect(error.code, what).toBe('MEMTIDE_ERR_CONFIG');
      expect(error.message, what).toMatch(expected);
      expect(error.message, `${what}: the file is named as the origin`).toContain(file);
      const logged = await waitFor(`the log of ${what}`, () => errorLogs.slice(before.logs).find((l) => l.startsWith('config edit rejected, keeping the last good config')));
      expect(logged).toMatch(expected);
      // The last good config stays in force, and monitoring goes on with it.
      expect(memtide.config().sampling.intervalMs, what).toBe(100);
      expect(memtide.config().pressure.marginPercent, what).toBe(5);
      await waitFor(`samples after ${what}`, () => samples >= before.samples + 2);
    }
    expect(configs).toHaveLength(1); // no bad config was ever emitted

    fs.writeFileSync(file, JSON.stringify({ sampling: { intervalMs: 200 }, pressure: { marginPercent: 7 } }));
    const applied = await waitFor('the valid edit', () => configs.find((c) => c.sampling.intervalMs === 200));
    expect(applied.pressure.marginPercent).toBe(7);
    expect(memtide.config().sampling.intervalMs).toBe(200);
    const after = samples;
    await waitFor('samples at the new interval', () => samples >= after + 2);
    expect(errors).toHaveLength(badEdits.length);
    expect(failures).toEqual([]);
  });
});
