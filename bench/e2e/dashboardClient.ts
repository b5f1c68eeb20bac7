/**
 * The dashboard, opened for the whole governed run: its page and the assets
 * the page links are fetched, then `/api/events` (the live SSE feed) is kept
 * open until the day is over, as a browser tab would. The viewer lives in
 * the bench process and is not counted in the totals (a stand-in for a
 * browser tab; the runner's cost of serving it is counted).
 */
import { openSse, type SseConnection } from './sse.js';

export interface DashboardStats {
  pageBytes: number;
  assets: number;
  assetBytes: number;
  events: Record<string, number>;
  openMs: number;
}

export interface DashboardViewer {
  close(): DashboardStats;
}

export async function openDashboard(baseUrl: string): Promise<DashboardViewer> {
  const page = await fetch(`${baseUrl}/`);
  if (!page.ok) throw new Error(`dashboard ${baseUrl}/: HTTP ${page.status}`);
  const html = await page.text();
  // Linked files and the import map's modules.
  const links = [...new Set([...html.matchAll(/"(\/assets\/[^"]+)"/g)].map((m) => m[1]!))];
  let assetBytes = 0;
  for (const link of links) {
    const res = await fetch(`${baseUrl}${link}`);
    if (!res.ok) throw new Error(`dashboard asset ${link}: HTTP ${res.status}`);
    assetBytes += (await res.arrayBuffer()).byteLength;
  }
  const state = await fetch(`${baseUrl}/api/state`);
  if (!state.ok) throw new Error(`dashboard ${baseUrl}/api/state: HTTP ${state.status}`);
  await state.arrayBuffer();
  const opened = Date.now();
  const feed: SseConnection = openSse(`${baseUrl}/api/events`, () => undefined);
  await feed.ready;
  return {
    close() {
      feed.close();
      return { pageBytes: html.length, assets: links.length, assetBytes, events: Object.fromEntries(feed.counts), openMs: Date.now() - opened };
    },
  };
}
