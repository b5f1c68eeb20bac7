/**
 * `POST /api/frontend-memory`: the browser kit's page-memory sampler (in
 * Meetily's webview) reports its JS/page memory here, as the `frontend`
 * component's inner view (the process RSS of the webview comes from the
 * sampler). `GET /api/frontend-memory` returns the latest report per source.
 * State-changing, so it needs the token: Meetily's Rust side (which can read
 * the token file) relays the page's numbers, or injects the token into the page.
 */
import { z } from 'zod';
import { HttpError, readJson, sendJson } from '../http.js';
import type { RouteModule } from '../router.js';

const reportSchema = z.strictObject({
  bytes: z.number().int().nonnegative(),
  source: z.enum(['uasm', 'performance.memory']),
  atMs: z.number().int().nonnegative(),
  /** Optional page label (e.g. "meetily-main"), to tell several pages apart. */
  page: z.string().min(1).max(80).optional(),
});
export type FrontendMemoryReport = z.output<typeof reportSchema> & { receivedAtMs: number };

/** Latest reports, one per page (bounded: at most 32 pages are remembered). */
export function frontendMemoryRoutes(now: () => number = Date.now): RouteModule {
  return ({ config }) => {
    const latest = new Map<string, FrontendMemoryReport>();
    return {
      routes: [
        {
          method: 'POST',
          path: '/api/frontend-memory',
          async handler(req, res) {
            const body = await readJson(req, config().server.bodyLimitBytes);
            const parsed = reportSchema.safeParse(body);
            if (!parsed.success) {
              const issue = parsed.error.issues[0];
              const field = issue?.code === 'unrecognized_keys' ? issue.keys.join(',') : (issue?.path.join('.') ?? '');
              throw new HttpError(400, 'MEMTIDE_ERR_FRONTEND_MEMORY', `${field || 'body'}: ${issue?.message ?? 'invalid report'}`, field);
            }
            const page = parsed.data.page ?? 'default';
            if (!latest.has(page) && latest.size >= 32) latest.delete(latest.keys().next().value as string);
            latest.set(page, { ...parsed.data, receivedAtMs: now() });
            sendJson(res, 202, { accepted: true, page });
          },
        },
        {
          method: 'GET',
          path: '/api/frontend-memory',
          handler: (_req, res) => sendJson(res, 200, { pages: Object.fromEntries(latest) }),
        },
      ],
    };
  };
}
