/**
 * The dashboard in a real browser (Debian's chromium through playwright-core)
 * against a real runner (createMemtide in runner mode + startServer with the
 * dashboard and API route modules) in a temp directory.
 *
 * Proves: the page loads without console errors and takes the token out of
 * the URL; charts grow as samples arrive; a forced pressure change (a config
 * patch through the API) shows the level badge and the alert; the unload button sends the
 * bearer token (and says so when there is none); the Actions panel lists
 * the coordinator's recorded actions (newest first, executed vs
 * observe-only, before → after, undone) and picks up new ones by polling
 * `GET /api/actions`, and the history view lists them; 100,000 history rows scroll
 * to the end with a bounded DOM; the JS heap stays flat under 20,000 fast
 * samples (and the same measurement does see a real leak). Saves the README
 * screenshots to docs/screenshots/.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Alert, LoadedModel } from '../../src/model.js';
import { HistoryStore } from '../../src/sinks/historyStore.js';
import {
  ensureBrowserBuild,
  fakeModels,
  fillHistory,
  HAS_CHROMIUM,
  launchBrowser,
  recordActions,
  REPO_ROOT,
  SKIP_REASON,
  startRunner,
  syntheticActions,
  syntheticSample,
  type Browser,
  type Runner,
} from './harness.js';

// The README's screenshots are refreshed only on request (MEMTIDE_SCREENSHOTS=1 npx vitest run test/browser),
// so an ordinary test run leaves the work tree clean; otherwise they go to a temp dir (still taken: the page renders).
const SCREENSHOTS = process.env.MEMTIDE_SCREENSHOTS === '1' ? path.join(REPO_ROOT, 'docs/screenshots') : fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-shots-'));

// Globals of the page, used inside page.evaluate callbacks (which run in Chromium; this file is compiled without the DOM lib).
declare const document: { querySelector(selector: string): any; querySelectorAll(selector: string): { length: number }; activeElement: { id: string } | null };
declare const sessionStorage: { getItem(key: string): string | null };
declare const requestAnimationFrame: (callback: () => void) => number;
declare const getComputedStyle: (element: unknown) => { borderLeftStyle: string; backgroundColor: string };

const models = (): LoadedModel[] => [
  { name: 'llama3.1:8b', sizeBytes: 5.6e9, sizeVramBytes: 0, contextLength: 8192, inFlight: 0, idleSinceMs: Date.now() - 754_000, pinned: false, expiresAtMs: null },
  { name: 'gemma3:1b', sizeBytes: 1.2e9, sizeVramBytes: 0, contextLength: 32768, inFlight: 1, idleSinceMs: null, pinned: true, expiresAtMs: null },
];

if (!HAS_CHROMIUM) {
  console.warn(SKIP_REASON);
  // In CI the browser must be there (.ci/run installs it): missing, it is a failure, not a skip.
  it.runIf(process.env.CI === 'true')('chromium is installed for the browser tests', () => {
    throw new Error(SKIP_REASON);
  });
}

describe.skipIf(!HAS_CHROMIUM)('dashboard in chromium', () => {
  let browser: Browser;

  beforeAll(async () => {
    ensureBrowserBuild();
    browser = await launchBrowser();
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
  });

  describe('live view', () => {
    let runner: Runner;
    let fake: ReturnType<typeof fakeModels>;

    beforeAll(async () => {
      fake = fakeModels(models());
      runner = await startRunner({ modules: [fake.module], intervalMs: 250 });
      // A real leak alert in the history database, as the alerts pipeline stores it: the page lists it with its one-click fix.
      const alert: Alert = {
        key: 'leak:backend',
        kind: 'leak',
        severity: 'warning',
        status: 'firing',
        component: 'backend',
        atMs: Date.now() - 60_000,
        sinceMs: Date.now() - 600_000,
        repeat: 0,
        title: 'backend is leaking about 31 MiB/h',
        message: 'Its anonymous memory grew steadily for 2 h (Theil-Sen slope, Mann-Kendall p < 0.01); at this rate available memory runs out in 9 h.',
        recommendations: [
          { action: 'Unload the idle model llama3.1:8b (idle 12 min): frees about 5.2 GiB.', command: 'memtide models unload llama3.1:8b', expectedSavingBytes: 5.6e9 },
          { action: 'Restart backend: it grew 62 MiB in the last 2 h; a restart gives that back.' },
        ],
      };
      runner.memtide.history?.appendAlerts([alert]);
      // What the coordinator and the governor recorded in the last quarter hour (the Actions panel).
      recordActions(runner.memtide.history!, syntheticActions(Date.now()));
    }, 60_000);

    afterAll(async () => {
      await runner?.close();
    });

    it('loads without console errors, moves the token out of the URL, and its charts grow as samples arrive', async () => {
      const { page, errors } = await browser.newPage();
      await page.goto(`${runner.url}/#token=${runner.token}`);
      expect(new URL(page.url()).hash).toBe('');
      expect(await page.evaluate(() => sessionStorage.getItem('memtide.token'))).toBe(runner.token);

      const points = () => page.locator('#system-chart').getAttribute('data-points').then(Number);
      await page.waitForFunction(() => Number(document.querySelector('#system-chart')?.getAttribute('data-points')) >= 2);
      const first = await points();
      await page.waitForFunction((n) => Number(document.querySelector('#system-chart')?.getAttribute('data-points')) >= n + 3, first);
      expect(await points()).toBeGreaterThan(first);
      expect(await page.locator('[data-component] .chart').count()).toBeGreaterThan(0);
      await expect.poll(() => page.locator('#connection').textContent()).toBe('live');
      await page.waitForSelector('[data-alert="leak:backend"]');
      await page.waitForSelector('tr[data-model="llama3.1:8b"]');
      expect(await page.locator('[data-leak="backend"]').count()).toBe(1);
      expect(errors).toEqual([]);
      await page.close();
    });

    it('works under the dashboard module\'s own headers (CSP, cross-origin isolation) in every view', async () => {
      const { page, errors } = await browser.newPage();
      // /index.html is always the dashboard module's (the state routes' `/` comes first until it is removed).
      await page.goto(`${runner.url}/index.html#token=${runner.token}`);
      await page.waitForFunction(() => Number(document.querySelector('#system-chart')?.getAttribute('data-points')) >= 2);
      expect(await page.evaluate('crossOriginIsolated')).toBe(true);
      await page.click('#tab-history');
      await page.waitForFunction(() => Number(document.querySelector('#history-system-chart .chart')?.getAttribute('data-points')) >= 1, undefined, { timeout: 20_000 });
      await page.keyboard.press('ArrowRight'); // tabs follow the arrow keys
      await page.waitForSelector('#cfg-sampling_intervalMs');
      expect(await page.locator('#tab-settings').getAttribute('aria-selected')).toBe('true');
      expect(errors).toEqual([]); // a CSP violation is a console error
      await page.close();
    });

    it('a forced pressure change (PATCH /api/config) shows the level badge and the pressure alert with its reasons', async () => {
      const { page, errors } = await browser.newPage();
      await page.goto(`${runner.url}/#token=${runner.token}`);
      await page.waitForFunction(() => document.querySelector('#level')?.getAttribute('data-level') !== 'unknown');
      // Force it through the API, as a user would: every amount of available memory is now "medium" or worse.
      const patch = (body: unknown) =>
        fetch(`${runner.url}/api/config`, { method: 'PATCH', headers: { authorization: `Bearer ${runner.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect((await patch({ pressure: { thresholds: { medium: { availablePercent: 100 } } } })).status).toBe(200);
      await page.waitForFunction(() => ['medium', 'high', 'critical'].includes(document.querySelector('#level')?.getAttribute('data-level') ?? ''), undefined, { timeout: 15_000 });
      const level = await page.locator('#level').textContent();
      expect(['medium', 'high', 'critical']).toContain(level);
      const banner = page.locator('#pressure-alert');
      await expect.poll(() => banner.isVisible()).toBe(true);
      expect(await banner.locator('.title').textContent()).toBe(`Memory pressure is ${level}`);
      expect(await banner.locator('.reasons li').count()).toBeGreaterThan(0);
      expect(await page.title()).toContain(`${level} pressure`);
      expect(errors).toEqual([]);
      expect((await patch({ pressure: { thresholds: null } })).status).toBe(200);
      await page.close();
    });

    it('the unload button calls the API with the bearer token, and explains a 401 when the tab has no token', async () => {
      const { page, errors } = await browser.newPage();
      await page.goto(`${runner.url}/#token=${runner.token}`);
      const unload = page.locator('button[data-unload="llama3.1:8b"]');
      await unload.waitFor();
      expect(await unload.getAttribute('aria-label')).toBe('Unload llama3.1:8b');
      const before = fake.calls.length;
      await unload.click();
      await expect.poll(() => fake.calls.length).toBe(before + 1);
      expect(fake.calls.at(-1)).toEqual({ path: '/api/models/llama3.1:8b/unload', authorization: `Bearer ${runner.token}` });
      await expect.poll(() => page.locator('#notice').textContent()).toContain('Asked to unload llama3.1:8b');
      expect(errors).toEqual([]);

      // Same page without a token: the server answers 401 and the page says what to do.
      fake.models.splice(0, fake.models.length, ...models());
      const anonymous = await browser.newPage();
      await anonymous.page.goto(`${runner.url}/`);
      const button = anonymous.page.locator('button[data-unload="gemma3:1b"]');
      await button.waitFor();
      await button.click();
      await expect.poll(() => anonymous.page.locator('#notice').textContent()).toMatch(/needs the token \(401\)/);
      expect(fake.calls.length).toBe(before + 1);
      // The 401 is the only console line: Chromium logs every failed fetch.
      expect(anonymous.errors.filter((e) => !/status of 401/.test(e))).toEqual([]);
      await page.close();
      await anonymous.page.close();
    });

    it('renders ten minutes of a meeting-day feed (the README screenshot)', async () => {
      const { page, errors } = await browser.newPage();
      await page.setViewportSize({ width: 1360, height: 1240 });
      // Synthetic samples of a Meetily machine (the test machine runs no Meetily): 8 hours of the day squeezed into the live window.
      const now = Date.now();
      let body = 'retry: 3600000\n\n';
      body += `event: pressure\ndata: ${JSON.stringify({ atMs: now - 40_000, level: 'high', previous: 'medium', reasons: ['available 21.8% <= 25%', 'psi some avg10 3.5% >= 3%'] })}\n\n`;
      for (let i = 0; i < 600; i++) {
        const { system, components, self } = syntheticSample(4000 + i * 100, 0, 500);
        body += `event: sample\ndata: ${JSON.stringify({ timestampMs: now - (600 - i) * 1000, system, components, self })}\n\n`;
      }
      let served = false;
      // The day once, then short empty connections (each opens, so the page rightly stays "live").
      await page.route('**/api/events', (route) => {
        const text = served ? 'retry: 500\n\n: keep-alive\n\n' : body.replace('retry: 3600000', 'retry: 500');
        served = true;
        return route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: text });
      });
      await page.goto(`${runner.url}/#token=${runner.token}`);
      await page.waitForFunction((last) => document.querySelector('#system-card')?.getAttribute('data-last-sample') === last, String(now - 1000));
      await page.waitForSelector('tr[data-model="gemma3:1b"]');
      await page.waitForSelector('[data-alert="leak:backend"]');
      await page.waitForSelector('#actions-list > li');
      expect(await page.locator('#level').textContent()).toBe('high');
      await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard.png') });
      expect(errors).toEqual([]);
      await page.close();
    });

    it('the page heap stays flat under 20,000 fast samples, and the same measurement sees a real leak', async () => {
      const { page, errors } = await browser.newPage();
      const start = Date.now() - 3_600_000;
      let sent = 0;
      const batch = (count: number, retryMs: number) => {
        let body = `retry: ${retryMs}\n\n`;
        for (let i = 0; i < count; i++, sent++) {
          const s = syntheticSample(sent, start + sent * 50, 50);
          const { timestampMs, system, components, self } = s;
          body += `event: sample\ndata: ${JSON.stringify({ timestampMs, system, components, self })}\n\n`;
        }
        return body;
      };
      let connections = 0;
      // The feed, fast: 2,000 samples to warm up, then (on the EventSource's reconnect) 20,000 more, then silence.
      await page.route('**/api/events', (route) => {
        connections++;
        const body = connections === 1 ? batch(2000, 300) : connections === 2 ? batch(20_000, 3_600_000) : 'retry: 3600000\n\n';
        return route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' }, body });
      });
      await page.goto(`${runner.url}/#token=${runner.token}`);
      const cdp = await page.context().newCDPSession(page);
      const settledHeap = async () => {
        for (let i = 0; i < 3; i++) await cdp.send('HeapProfiler.collectGarbage');
        return (await cdp.send('Runtime.getHeapUsage')).usedSize;
      };
      const lastOf = (n: number) => String(start + (n - 1) * 50);
      await page.waitForFunction((last) => document.querySelector('#system-card')?.getAttribute('data-last-sample') === last, lastOf(2000), { timeout: 30_000 });
      const warm = await settledHeap();
      await page.waitForFunction((last) => document.querySelector('#system-card')?.getAttribute('data-last-sample') === last, lastOf(22_000), { timeout: 60_000 });
      // One more frame so the last render has run, then measure.
      await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => resolve(null))));
      const after = await settledHeap();
      expect(Number(await page.locator('#system-chart').getAttribute('data-points'))).toBe(600);
      expect(await page.locator('[data-component]').count()).toBe(5);
      const growth = after - warm;
      console.log(`page heap: ${(warm / 1048576).toFixed(2)} MiB after 2,000 samples, ${(after / 1048576).toFixed(2)} MiB after 22,000 (growth ${(growth / 1048576).toFixed(2)} MiB)`);
      expect(growth).toBeLessThan(3 * 1024 * 1024);

      // The control: keep 20,000 parsed samples alive the way an unbounded array would.
      const one = syntheticSample(0, start, 50);
      const template = JSON.stringify({ timestampMs: one.timestampMs, system: one.system, components: one.components, self: one.self });
      await page.evaluate(
        ([json, count]) => {
          const kept: unknown[] = [];
          for (let i = 0; i < count; i++) kept.push(JSON.parse(json));
          (globalThis as { leak?: unknown[] }).leak = kept;
        },
        [template, 20_000] as const,
      );
      const leaked = await settledHeap();
      expect(leaked - after).toBeGreaterThan(3 * 1024 * 1024);
      expect(errors).toEqual([]);
      await cdp.detach();
      await page.close();
    }, 90_000);

    it('the Actions panel lists recorded actions newest first (executed, observe-only, before → after, undone) and polls for new ones', async () => {
      const { page, errors } = await browser.newPage();
      await page.goto(`${runner.url}/#token=${runner.token}`);
      const items = page.locator('#actions-list > li');
      await expect.poll(() => items.count(), { timeout: 15_000 }).toBe(4);
      const item = (kind: string) => page.locator('#actions-list > li', { has: page.locator('.kind', { hasText: new RegExp(`^${kind}$`) }) });
      // Newest first.
      expect(await page.locator('#actions-list .kind').allTextContents()).toEqual(['hold', 'shrink-caches', 'cap-model-budget', 'unload-idle-models']);

      const unload = item('unload-idle-models');
      expect(await unload.getAttribute('data-state')).toBe('executed');
      expect(await unload.locator('.chip').textContent()).toBe('executed');
      expect(await unload.locator('.target').textContent()).toBe('ollama: llama3.1:8b (5.2 GiB)');
      expect(await unload.locator('.action-memory').textContent()).toBe('ollama 5.5 GiB → 300 MiB (freed 5.2 GiB · available +5.1 GiB)');

      const observe = item('shrink-caches');
      expect(await observe.getAttribute('data-state')).toBe('observe');
      expect(await observe.locator('.chip').textContent()).toBe('observe-only');
      expect(await observe.locator('.why').textContent()).toMatch(/^coordinator at medium · not executed · pressure medium/);
      // Shown differently: a dashed, white item, not the executed one's filled purple.
      const style = (locator: typeof observe) => locator.evaluate((el: any) => `${getComputedStyle(el).borderLeftStyle} ${getComputedStyle(el).backgroundColor}`);
      expect(await style(observe)).not.toBe(await style(unload));

      expect(await item('cap-model-budget').locator('.why').textContent()).toMatch(/ · undone \d\d:\d\d:\d\d[^·]* · balancing/);
      expect(await item('hold').locator('.action-memory').textContent()).toBe('ollama 1.3 GiB → measuring…');
      expect(await page.locator('#actions-summary').textContent()).toBe('last hour: 4 · 3 executed · 1 observe-only');

      // A new action reaches the panel by polling, as text (the page has no innerHTML path for data).
      const id = runner.memtide.history!.insertAction({
        ...syntheticActions(Date.now())[0]!.entry,
        atMs: Date.now(),
        kind: 'lower-transcription-concurrency',
        target: 'audio',
        detail: '1 chunk(s) at once',
        reason: 'pressure critical <b>not markup</b>',
      });
      const fresh = page.locator(`#actions-list > li[data-action-id="${id}"]`);
      await fresh.waitFor({ timeout: 15_000 });
      expect(await items.first().getAttribute('data-action-id')).toBe(String(id));
      expect(await fresh.locator('.why').textContent()).toContain('<b>not markup</b>');
      expect(await fresh.locator('b').count()).toBe(0);
      expect(errors).toEqual([]);
      await page.close();
    });
  });

  describe('settings view', () => {
    let runner: Runner;

    beforeAll(async () => {
      runner = await startRunner({ intervalMs: 1000, modules: [fakeModels(models()).module] });
    }, 60_000);

    afterAll(async () => {
      await runner?.close();
    });

    it('edits the config through the schema form: per-field errors from the 400, then applied without restart', async () => {
      const { page, errors } = await browser.newPage();
      await page.goto(`${runner.url}/#settings&token=${runner.token}`);
      const interval = page.locator('#cfg-sampling_intervalMs');
      await interval.waitFor();
      expect(await page.locator('label[for="cfg-sampling_intervalMs"]').textContent()).toBe('intervalMs');
      expect(await page.locator('#cfg-history_path').isDisabled()).toBe(true);
      await interval.fill('10');
      await page.selectOption('#cfg-pressure_preset', JSON.stringify('8gb'));
      await page.click('#settings-form button[type=submit]');
      const error = page.locator('#cfg-sampling_intervalMs-error');
      await expect.poll(() => error.textContent()).toMatch(/at least 50 ms/);
      expect(await interval.getAttribute('aria-invalid')).toBe('true');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('cfg-sampling_intervalMs');
      expect(runner.memtide.config().pressure.preset).toBe('auto'); // a rejected patch changes nothing

      await interval.fill('1500');
      await page.click('#settings-form button[type=submit]');
      await expect.poll(() => runner.memtide.config().sampling.intervalMs).toBe(1500);
      expect(runner.memtide.config().pressure.preset).toBe('8gb');
      expect(await interval.getAttribute('aria-invalid')).toBeNull();
      expect(await interval.inputValue()).toBe('1500');
      await expect.poll(() => page.locator('#settings-overrides').textContent()).toContain('sampling.intervalMs');
      await page.screenshot({ path: path.join(SCREENSHOTS, 'settings.png') });
      expect(errors.filter((e) => !/status of 400/.test(e))).toEqual([]);
      await page.close();
    });
  });

  describe('history view', () => {
    let runner: Runner;
    let range: { sinceMs: number; untilMs: number };
    let dir: string;

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-history-'));
      const db = path.join(dir, 'history.db');
      range = fillHistory(db, 100_000, Date.now() - 60_000);
      runner = await startRunner({ historyPath: db, intervalMs: 1000, modules: [fakeModels(models()).module] });
      recordActions(runner.memtide.history!, syntheticActions(range.untilMs - 1));
    }, 120_000);

    afterAll(async () => {
      await runner?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('lists 100,000 samples with a bounded DOM while scrolling to the end, and charts the range', async () => {
      const { page, errors } = await browser.newPage();
      await page.goto(`${runner.url}/#history&since=${range.sinceMs}&until=${range.untilMs}&token=${runner.token}`);
      expect(new URL(page.url()).hash).toBe(`#history&since=${range.sinceMs}&until=${range.untilMs}`);
      await expect.poll(() => page.locator('#history-list-count').textContent(), { timeout: 30_000 }).toBe(`${(100_000).toLocaleString('en-US')} samples`);
      await page.waitForSelector('#history-rows [data-row="0"]:not(.loading)');
      await page.waitForFunction(() => Number(document.querySelector('#history-system-chart .chart')?.getAttribute('data-points')) > 100, undefined, { timeout: 30_000 });
      await page.screenshot({ path: path.join(SCREENSHOTS, 'history.png'), fullPage: true });

      const rowCount = () => page.evaluate(() => document.querySelectorAll('[data-row]').length);
      let most = await rowCount();
      // Scroll down in ten jumps, then to the very end with the keyboard.
      for (let step = 1; step <= 10; step++) {
        await page.evaluate((fraction) => {
          const list = document.querySelector('#history-rows');
          list.scrollTop = list.scrollHeight * fraction;
        }, step / 10);
        await page.waitForTimeout(60);
        most = Math.max(most, await rowCount());
      }
      await page.focus('#history-rows');
      await page.keyboard.press('End');
      const last = page.locator('#history-rows [data-row="99999"]');
      await last.waitFor();
      await expect.poll(() => last.getAttribute('class'), { timeout: 20_000 }).not.toContain('loading');
      most = Math.max(most, await rowCount());
      expect(await last.locator('span').nth(1).textContent()).toMatch(/GiB|MiB/);
      console.log(`history list: at most ${most} row elements for 100,000 rows`);
      expect(most).toBeLessThan(300);
      expect(await page.locator('#history-rows').getAttribute('aria-rowcount')).toBe('100001');
      expect(errors).toEqual([]);
      await page.close();
    }, 90_000);

    it('lists the actions of the range (virtualised, oldest first)', async () => {
      const { page, errors } = await browser.newPage();
      await page.goto(`${runner.url}/#history&since=${range.sinceMs}&until=${range.untilMs}&token=${runner.token}`);
      await page.waitForSelector('#history-rows [data-row="0"]');
      await page.click('[data-list="actions"]');
      await expect.poll(() => page.locator('#history-list-count').textContent(), { timeout: 15_000 }).toBe('4 actions');
      const cells = (row: number) => page.locator(`#history-rows [data-row="${row}"]:not(.loading) span`).allTextContents();
      await page.waitForSelector('#history-rows [data-row="3"]');
      const [first, , third] = [await cells(0), await cells(1), await cells(2)];
      expect(first.slice(1)).toEqual(['coordinator', 'unload-idle-models', 'high', 'ollama: llama3.1:8b (5.2 GiB)', 'executed', '5.5 GiB → 300 MiB', 'freed 5.2 GiB · available +5.1 GiB', '–']);
      expect(third.slice(1, 6)).toEqual(['coordinator', 'shrink-caches', 'medium', 'backend', 'observe-only: not executed']);
      expect((await cells(1))[8]).not.toBe('–'); // the cap was undone
      expect(errors).toEqual([]);
      await page.close();
    }, 60_000);
  });
});

// The history file used above must stay readable by the store itself (the runner appends to it while the page reads).
it('synthetic history is a valid store (sanity of the fixture)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memtide-fixture-'));
  try {
    const db = path.join(dir, 'h.db');
    const { sinceMs, untilMs } = fillHistory(db, 1000, Date.now());
    const store = HistoryStore.open(db);
    let rows = 0;
    for (const _ of store.systemSeries({ sinceMs, untilMs })) rows++;
    store.close();
    expect(rows).toBe(1000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
