import path from 'node:path';
import { afterEach } from 'vitest';
import { HistoryStore } from '../../src/sinks/historyStore.js';
import { tempDir } from './lifecycle.js';

/**
 * History databases in a fresh temp directory (removed after the test file).
 * Every store opened with `open` is closed after each test, also a failing one.
 */
export function historyFiles(prefix: string): {
  dir: string;
  /** A path for a new database file: `<name>-<n>.db`. */
  freshPath: (name?: string) => string;
  open: (file: string, config?: Parameters<typeof HistoryStore.open>[1]) => HistoryStore;
} {
  const dir = tempDir(prefix);
  let files = 0;
  const stores: HistoryStore[] = [];
  afterEach(() => {
    for (const store of stores.splice(0)) store.close();
  });
  return {
    dir,
    freshPath: (name = 'history') => path.join(dir, `${name}-${(files += 1)}.db`),
    open: (file, config = {}) => {
      const store = HistoryStore.open(file, config);
      stores.push(store);
      return store;
    },
  };
}
