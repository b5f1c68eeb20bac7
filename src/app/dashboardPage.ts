/**
 * The live page served at `/` by the state routes. It is the dashboard's
 * shell (src/app/dashboard/page.ts); its scripts and styles are served by
 * `routes/dashboard.ts`. Kept as a re-export so `routes/state.ts` serves the
 * same page until its own `GET /` is removed in favour of the dashboard
 * module's (which adds the security headers).
 */
export { DASHBOARD_SHELL as DASHBOARD_HTML } from './dashboard/page.js';
