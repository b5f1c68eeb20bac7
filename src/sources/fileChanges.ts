import { watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Observable, asyncScheduler, debounceTime, type SchedulerLike } from 'rxjs';

/**
 * Emits (debounced) whenever `path` may have changed. Watches the directory,
 * not the file: editors save by writing a new file and renaming it over the
 * old one, which ends a watch on the file itself.
 */
export function fileChanges(path: string, debounceMs = 150, scheduler: SchedulerLike = asyncScheduler): Observable<void> {
  const absolute = resolve(path);
  const name = basename(absolute);
  return new Observable<void>((subscriber) => {
    const watcher = watch(dirname(absolute), { persistent: false }, (_event, file) => {
      if (file === null || file === name) subscriber.next();
    });
    watcher.on('error', (error) => subscriber.error(error));
    return () => watcher.close();
  }).pipe(debounceTime(debounceMs, scheduler));
}
