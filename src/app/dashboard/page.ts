/**
 * The dashboard's HTML shell, stylesheet and icon (Node side: served by
 * `routes/dashboard.ts`). The scripts are the browser build
 * (tsconfig.browser.json: `src/app/dashboard/client` and the kit in
 * `src/browser`), loaded as ES modules; bare imports (`uplot`, `lru-cache`)
 * resolve through the import map to copies served from node_modules. Nothing
 * comes from a CDN.
 */
import { createHash } from 'node:crypto';

export const IMPORT_MAP = JSON.stringify({
  imports: {
    uplot: '/assets/vendor/uPlot.esm.js',
    'lru-cache': '/assets/vendor/lru-cache.js',
  },
});

/** The inline import map is the only inline script: the CSP allows exactly it, by hash. */
const IMPORT_MAP_HASH = `sha256-${createHash('sha256').update(IMPORT_MAP).digest('base64')}`;

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src 'self' '${IMPORT_MAP_HASH}'`,
  // uPlot positions its cursor and legend through element.style (CSSOM), which CSP allows.
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of the HTML page: no referrer, no framing, cross-origin isolated (so the page may use measureUserAgentSpecificMemory). */
export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
});

export const DASHBOARD_SHELL = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>memtide</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/vendor/uPlot.min.css">
<link rel="stylesheet" href="/assets/style.css">
<script type="importmap">${IMPORT_MAP}</script>
<script type="module" src="/assets/js/app/dashboard/client/main.js"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <div class="brand"><img src="/assets/icon.svg" alt="" width="28" height="28"><span>memtide</span></div>
  <div class="pressure" role="status" aria-live="polite" aria-atomic="true">
    <span class="label">Pressure</span>
    <span id="level" class="badge level-unknown" data-level="unknown">waiting</span>
  </div>
  <nav class="tabs" role="tablist" aria-label="Views">
    <button role="tab" id="tab-live" aria-controls="view-live" aria-selected="true" data-view="live">Live</button>
    <button role="tab" id="tab-history" aria-controls="view-history" aria-selected="false" tabindex="-1" data-view="history">History</button>
    <button role="tab" id="tab-settings" aria-controls="view-settings" aria-selected="false" tabindex="-1" data-view="settings">Settings</button>
  </nav>
  <div id="connection" class="connection" role="status" aria-live="polite">connecting…</div>
</header>
<div id="notice" class="notice" role="alert" hidden></div>
<main id="main" tabindex="-1">
  <p id="boot" class="boot">Loading the dashboard… If this message stays, its scripts did not load: run <code>npm run build</code> (they are compiled from <code>src/app/dashboard/client</code>) and reload.</p>
  <section id="view-live" role="tabpanel" aria-labelledby="tab-live" class="view"></section>
  <section id="view-history" role="tabpanel" aria-labelledby="tab-history" class="view" hidden></section>
  <section id="view-settings" role="tabpanel" aria-labelledby="tab-settings" class="view" hidden></section>
</main>
<footer class="foot" id="footer"><span id="page-memory">page memory: measuring…</span><span id="cache-stats"></span><span id="token-state"></span></footer>
<noscript><p class="boot">The dashboard needs JavaScript. The JSON API is under <code>/api</code>.</p></noscript>
</body>
</html>
`;

export const DASHBOARD_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#12305a"/><path d="M4 20c3 0 3-6 6-6s3 8 6 8 3-12 6-12 3 10 6 10" fill="none" stroke="#5fd1ff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>`;

export const DASHBOARD_CSS = `
:root{--bg:#f3f5f8;--card:#fff;--ink:#17202e;--muted:#5a6577;--line:#dde2ea;--accent:#1d5fbf;--accent-ink:#fff;
--low:#1e7b34;--medium:#8a6100;--medium-bg:#fff4d6;--high:#b34700;--high-bg:#ffe7d6;--critical:#b3121f;--critical-bg:#ffe0e2;--focus:#ffb400;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;flex-direction:column}
a{color:var(--accent)}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef1f6;padding:1px 4px;border-radius:4px}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-9999px;top:0;background:#fff;padding:8px;z-index:10}.skip:focus{left:8px}
.top{display:flex;align-items:center;gap:20px;padding:10px 24px;background:#12305a;color:#fff;flex-wrap:wrap}
.brand{display:flex;align-items:center;gap:8px;font-weight:700;font-size:18px;letter-spacing:.3px}
.pressure{display:flex;align-items:center;gap:8px}.pressure .label{opacity:.8;font-size:12px;text-transform:uppercase;letter-spacing:.6px}
.badge{display:inline-block;min-width:72px;text-align:center;padding:3px 12px;border-radius:999px;font-weight:700;background:#6b7585;color:#fff}
.level-low{background:var(--low)}.level-medium{background:#e0a100;color:#1b1400}.level-high{background:#e36a00;color:#fff}.level-critical{background:var(--critical)}
.tabs{display:flex;gap:4px;margin-left:auto}
.tabs button{background:transparent;color:#dce6f5;border:0;border-bottom:3px solid transparent;padding:8px 14px;font:inherit;font-weight:600;cursor:pointer}
.tabs button[aria-selected=true]{color:#fff;border-bottom-color:#5fd1ff}
.connection{font-size:12px;opacity:.85;min-width:90px;text-align:right}
.connection.down{color:#ffb4b4}
main{flex:1;padding:20px 24px;max-width:1480px;width:100%;margin:0 auto}
.boot{color:var(--muted)}
.notice{margin:12px 24px 0;padding:10px 14px;border-radius:8px;background:var(--critical-bg);color:var(--critical);border:1px solid #f3b5ba}
.notice.ok{background:#e2f5e7;color:var(--low);border-color:#a9dcb5}
.grid{display:grid;gap:16px;align-content:start}
.grid.two{grid-template-columns:minmax(0,1.7fr) minmax(0,1fr);align-items:start}
.grid.cards{grid-template-columns:repeat(auto-fill,minmax(300px,1fr))}
@media (max-width:1100px){.grid.two{grid-template-columns:1fr}}
.table-wrap{overflow-x:auto}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;min-width:0}
.card h2{font-size:15px;margin:0 0 8px;display:flex;align-items:baseline;gap:8px}
.card h2 .sub{font-weight:400;color:var(--muted);font-size:12px;margin-left:auto}
.card h3{font-size:13px;margin:0 0 4px}
.stats{display:flex;gap:18px;flex-wrap:wrap;margin:0 0 8px}
.stats div{display:flex;flex-direction:column}.stats dt{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.5px}.stats dd{margin:0;font-weight:700;font-size:16px;font-variant-numeric:tabular-nums}
.muted{color:var(--muted)}.small{font-size:12px}
.empty{color:var(--muted);font-style:italic;margin:6px 0}
.unavailable{color:var(--muted);background:#f2f4f8;border:1px dashed var(--line);padding:8px 10px;border-radius:6px;font-size:12px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;text-align:right;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-size:11px;text-transform:uppercase;letter-spacing:.5px;color:var(--muted);font-weight:600}
th:first-child,td:first-child{text-align:left}
tbody th{text-transform:none;letter-spacing:0;font-size:14px;color:var(--ink);font-weight:600;white-space:normal}
tbody th .small{font-weight:400}
td.actions{text-align:right}
td.actions .btn{padding:2px 8px;font-size:12px;margin-left:4px}
button.btn,.btn{font:inherit;font-weight:600;border-radius:6px;border:1px solid var(--accent);background:var(--accent);color:var(--accent-ink);padding:4px 10px;cursor:pointer}
.btn.secondary{background:#fff;color:var(--accent)}
.btn.danger{background:#fff;color:var(--critical);border-color:var(--critical)}
.btn:disabled{opacity:.5;cursor:not-allowed}
.alerts{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:10px}
.alert{border-left:5px solid #6b7585;background:#f7f8fb;border-radius:6px;padding:8px 12px}
.alert.sev-info{border-color:var(--accent)}.alert.sev-warning{border-color:#e36a00;background:var(--high-bg)}.alert.sev-critical{border-color:var(--critical);background:var(--critical-bg)}
.alert.pressure-medium{border-color:#e0a100;background:var(--medium-bg)}.alert.pressure-high{border-color:#e36a00;background:var(--high-bg)}.alert.pressure-critical{border-color:var(--critical);background:var(--critical-bg)}
.alert .title{font-weight:700}.alert .msg{margin:2px 0 4px}
.alert ul{margin:4px 0 0;padding-left:18px}.alert li{margin:3px 0}
.alert li .btn{margin-left:8px;padding:1px 8px;font-size:12px}
.reasons{margin:0;padding-left:18px;color:var(--muted);font-size:12px}
.chart{width:100%;min-height:120px}
.chart .u-legend{font-size:12px}
.comp-head{display:flex;justify-content:space-between;align-items:baseline}
.comp-head .value{font-weight:700;font-variant-numeric:tabular-nums}
.controls{display:flex;gap:10px;flex-wrap:wrap;align-items:end;margin-bottom:12px}
.controls label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:2px}
input,select,textarea{font:inherit;padding:5px 8px;border:1px solid #b9c2cf;border-radius:6px;background:#fff;color:var(--ink)}
input[aria-invalid=true],select[aria-invalid=true],textarea[aria-invalid=true]{border-color:var(--critical);background:#fff6f6}
.seg{display:inline-flex;border:1px solid var(--accent);border-radius:6px;overflow:hidden}
.seg button{border:0;border-right:1px solid var(--accent);background:#fff;color:var(--accent);padding:5px 10px;font:inherit;font-weight:600;cursor:pointer}
.seg button:last-child{border-right:0}.seg button[aria-pressed=true]{background:var(--accent);color:#fff}
.vlist{height:420px;border:1px solid var(--line);border-radius:8px;background:#fff;contain:strict}
.vhead,.vrow{display:grid;column-gap:16px;align-items:center;padding:0 10px;font-variant-numeric:tabular-nums}
.vhead{font-size:11px;text-transform:uppercase;letter-spacing:.5px;color:var(--muted);font-weight:600;padding:6px 10px;border:1px solid var(--line);border-bottom:0;border-radius:8px 8px 0 0;background:#f7f8fb}
.vhead+.vlist{border-radius:0 0 8px 8px}
.vrow{border-bottom:1px solid #eef1f5;white-space:nowrap;overflow:hidden}
.vrow:nth-child(even){background:#fafbfd}
.vrow span,.vhead span{overflow:hidden;text-overflow:ellipsis;text-align:right}
.vrow.loading{color:var(--muted)}
.list-tabs{display:flex;gap:8px;align-items:center;margin:14px 0 8px}
.form section{margin-bottom:14px}
.form fieldset{border:1px solid var(--line);border-radius:10px;padding:10px 14px;margin:0 0 12px;background:#fff}
.form legend{font-weight:700;padding:0 6px}
.field{display:grid;grid-template-columns:minmax(180px,260px) minmax(0,1fr);gap:4px 14px;padding:7px 0;border-bottom:1px solid #f0f2f6}
.field:last-child{border-bottom:0}
.field label{font-weight:600;word-break:break-word}
.field .help{grid-column:2;font-size:12px;color:var(--muted)}
.field .error{grid-column:2;font-size:12px;color:var(--critical);font-weight:600}
.field textarea{min-height:70px;font:12px/1.4 ui-monospace,monospace;width:100%}
.field input[type=text],.field input[type=number],.field select{max-width:340px;width:100%}
.form .bar{position:sticky;bottom:0;background:var(--bg);padding:10px 0;display:flex;gap:10px;align-items:center;border-top:1px solid var(--line)}
.action-list{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:8px}
.action{border-left:4px solid #5e35b1;background:#f7f8fb;border-radius:6px;padding:6px 10px}
.action.state-observe{border:1px dashed #8a94a6;border-left:4px solid #b7bfcc;background:#fff}
.action.state-observe .kind{font-style:italic;font-weight:600}
.action.state-failed{border-left-color:var(--critical);background:var(--critical-bg)}
.action-head{display:flex;gap:8px;align-items:baseline;flex-wrap:wrap}
.action-head .when{font-variant-numeric:tabular-nums}.action-head .target{font-size:12px}
.action-memory{font-variant-numeric:tabular-nums;margin:2px 0}
.action .why{overflow-wrap:anywhere}
.chip{display:inline-block;padding:0 8px;border-radius:999px;font-size:11px;font-weight:700;letter-spacing:.3px;border:1px solid transparent}
.chip.state-executed{background:#ece5fa;color:#4527a0}
.chip.state-observe{background:#fff;color:var(--muted);border:1px dashed #8a94a6}
.chip.state-failed{background:#fff;color:var(--critical);border-color:var(--critical)}
.foot{display:flex;gap:24px;padding:8px 24px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);background:#fff}
.visually-hidden{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
`;
