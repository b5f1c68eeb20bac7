/**
 * The configuration as an observable. The file (and later the control API)
 * may change it while memtide runs; a valid change applies from the next
 * sample on, an invalid one keeps the last good config and is reported.
 */
import { BehaviorSubject, Subject, type Observable, type Subscription, distinctUntilChanged } from 'rxjs';
import { fileChanges } from '../sources/fileChanges.js';
import { ConfigError, loadConfig, type LoadConfigOptions, type MemtideConfig } from './config.js';

export interface LiveConfig {
  /** Current config; replays the latest value to new subscribers. */
  readonly config$: Observable<MemtideConfig>;
  /** Rejected edits, with every issue named by path. */
  readonly errors$: Observable<ConfigError>;
  /** The config in force now. */
  current(): MemtideConfig;
  /** Re-reads every layer (file, env, flags); returns the error when the result is invalid. */
  reload(): ConfigError | null;
  stop(): void;
}

const sameConfig = (a: MemtideConfig, b: MemtideConfig) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Loads the config (throws ConfigError when the first load is invalid: there
 * is no last good config to fall back to) and, when a file is used, watches it.
 */
export function createLiveConfig(options: LoadConfigOptions & { watch?: boolean } = {}): LiveConfig {
  const subject = new BehaviorSubject<MemtideConfig>(loadConfig(options));
  const errors = new Subject<ConfigError>();
  const file = options.file ?? (options.env ?? process.env).MEMTIDE_CONFIG;

  const reload = (): ConfigError | null => {
    try {
      subject.next(loadConfig(options));
      return null;
    } catch (error) {
      const configError = error instanceof ConfigError ? error : new ConfigError([{ path: '', message: String(error), origin: file ?? 'config' }]);
      errors.next(configError);
      return configError;
    }
  };

  let watching: Subscription | undefined;
  if (file && options.watch !== false) {
    watching = fileChanges(file).subscribe({
      next: () => reload(),
      error: (error: unknown) => errors.next(new ConfigError([{ path: '', message: `cannot watch the file any more: ${String(error)}`, origin: file }])),
    });
  }

  return {
    config$: subject.pipe(distinctUntilChanged(sameConfig)),
    errors$: errors.asObservable(),
    current: () => subject.getValue(),
    reload,
    stop() {
      watching?.unsubscribe();
      subject.complete();
      errors.complete();
    },
  };
}
