/**
 * `useAssetCache(options)`: an `AssetCache` owned by a component. It is
 * disposed on unmount (object URLs revoked, bitmaps closed: seed 7.1, 8.2)
 * and re-created if the component mounts again (React StrictMode mounts,
 * unmounts and mounts every component once in development).
 */
import { useEffect, useRef, useState } from 'react';
import { AssetCache, type AssetCacheOptions, type AssetValue } from '../browser/assetCache.js';

export function useAssetCache<V extends AssetValue = AssetValue>(options: AssetCacheOptions<V>): AssetCache<V> {
  // The options are read when the cache is made; a new budget makes a new cache.
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const [cache, setCache] = useState(() => new AssetCache<V>(options));
  const { maxBytes, maxEntries, ttlMs } = options;

  useEffect(() => {
    // Every cleanup disposes the cache it ran with, so a disposed one here means
    // a remount (StrictMode) or new options: make a fresh cache.
    let current = cache;
    if (current.isDisposed) {
      current = new AssetCache<V>(optionsRef.current);
      setCache(current);
    }
    return () => current.dispose();
    // `cache` is deliberately not a dependency: a replacement made here must not re-run the effect.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [maxBytes, maxEntries, ttlMs]);

  return cache;
}
