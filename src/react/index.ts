/**
 * `memtide/react`: React hooks over the browser kit. Every hook releases what
 * it holds (EventSource, cache entries, listeners, frames) on unmount.
 * React is an optional peer dependency (>= 18).
 */
export { useMemoryPressure, type MemoryPressureState, type UseMemoryPressureOptions } from './useMemoryPressure.js';
export { useAssetCache } from './useAssetCache.js';
export { useVirtualList, type UseVirtualListOptions, type VirtualListState } from './useVirtualList.js';
