/** Helpers for tests of config loading: config files on disk, and the issues of a rejected config. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ConfigError, type ConfigIssue } from '../../src/app/config.js';
import { tempDir } from './lifecycle.js';

/**
 * A fresh temp directory (removed after the test file) and `write`, which
 * puts `content` (an object as JSON, a string as it is) in a new file there
 * and returns its path.
 */
export function configFiles(prefix: string): { dir: string; write: (content: unknown) => string } {
  const dir = tempDir(prefix);
  let files = 0;
  const write = (content: unknown): string => {
    files += 1;
    const path = join(dir, `memtide-${files}.json`);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };
  return { dir, write };
}

/** Runs `load`, expects a ConfigError, and returns its issues. */
export function issuesOf(load: () => unknown): ConfigIssue[] {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.code).toBe('MEMTIDE_ERR_CONFIG');
    return configError.issues;
  }
  throw new Error('expected a ConfigError, but the configuration loaded');
}
