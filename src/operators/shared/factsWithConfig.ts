/**
 * The subscription skeleton of the coordination operators (`balanceBudgets`,
 * `yieldBatch`): a config that may be a value or a hot Observable, and a
 * stream of facts; each is validated before its handler sees it, and a bad
 * one errors the output (an `XxxError` naming the field). The config is
 * subscribed first, so a plain config is in force before the first facts;
 * if it already failed, the facts are never subscribed.
 */
import { isObservable, of, Subscription, type Observable, type Subscriber } from 'rxjs';

export interface FactsWithConfigHandlers<F, C> {
  validateConfig(config: C): void;
  onConfig(config: C): void;
  validateFacts(facts: F): void;
  onFacts(facts: F): void;
}

/** Subscribes both; the returned Subscription ends both (the caller adds its own timers' teardown). */
export function subscribeFactsWithConfig<F, C>(
  subscriber: Subscriber<unknown>,
  source: Observable<F>,
  config: C | Observable<C>,
  handlers: FactsWithConfigHandlers<F, C>,
): Subscription {
  const subscription = new Subscription();
  const checked =
    <T>(validate: (value: T) => void, handle: (value: T) => void) =>
    (value: T) => {
      try {
        validate(value);
      } catch (error) {
        subscriber.error(error);
        return;
      }
      handle(value);
    };
  subscription.add(
    (isObservable(config) ? config : of(config)).subscribe({
      next: checked(handlers.validateConfig, handlers.onConfig),
      error: (error: unknown) => subscriber.error(error),
    }),
  );
  if (subscriber.closed) return subscription;
  subscription.add(
    source.subscribe({
      next: checked(handlers.validateFacts, handlers.onFacts),
      error: (error: unknown) => subscriber.error(error),
      complete: () => subscriber.complete(),
    }),
  );
  return subscription;
}
