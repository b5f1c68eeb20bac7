/**
 * The live page served at `/`. Self-contained (no CDN, no build step): it
 * listens to `/api/events` (SSE) and keeps a bounded window of points, so its
 * memory does not grow however long it stays open.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>memtide</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f6f7f9}
h1{font-size:20px;margin:0 0 12px} .row{display:flex;gap:16px;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:16px;box-shadow:0 1px 3px #0002;min-width:260px}
.level{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.low{background:#2e7d32}.medium{background:#f9a825}.high{background:#ef6c00}.critical{background:#c62828}
table{border-collapse:collapse;width:100%} td,th{padding:4px 8px;text-align:right} td:first-child,th:first-child{text-align:left}
svg{width:100%;height:120px;background:#fbfbfd;border:1px solid #e3e5ea;border-radius:4px}
#reasons{color:#555;font-size:12px}
</style></head><body>
<h1>memtide <span id="level" class="level low">…</span></h1>
<div id="reasons"></div>
<div class="row">
<div class="card" style="flex:1"><b>System</b><div id="system">waiting for the first sample…</div>
<svg id="chart" viewBox="0 0 300 100" preserveAspectRatio="none"><polyline id="line" fill="none" stroke="#1565c0" stroke-width="1.5" points=""/></svg>
<small>available memory, last 5 minutes</small></div>
<div class="card" style="flex:1"><b>Components</b><table id="components"><thead><tr><th>component</th><th>procs</th><th>RSS</th><th>PSS</th></tr></thead><tbody></tbody></table></div>
</div>
<script>
const WINDOW = 300; const points = [];
const fmt = (b) => { if (b === null || b === undefined) return '-'; const u = ['B','KiB','MiB','GiB','TiB']; let i = 0; while (Math.abs(b) >= 1024 && i < 4) { b /= 1024; i++; } return (i ? b.toFixed(1) : b) + ' ' + u[i]; };
function onSample(s) {
  const sys = s.system;
  document.getElementById('system').textContent = fmt(sys.availableBytes) + ' available of ' + fmt(sys.totalBytes) + (sys.psi ? ' | PSI some ' + sys.psi.someAvg10.toFixed(1) + '%' : '');
  points.push(sys.availableBytes / sys.totalBytes); if (points.length > WINDOW) points.shift();
  document.getElementById('line').setAttribute('points', points.map((p, i) => (i * 300 / (WINDOW - 1)).toFixed(1) + ',' + (100 - p * 100).toFixed(1)).join(' '));
  const body = document.querySelector('#components tbody'); body.replaceChildren();
  Object.entries(s.components).sort((a, b) => b[1].rssBytes - a[1].rssBytes).forEach(([name, c]) => {
    const tr = document.createElement('tr');
    [name, c.processCount, fmt(c.rssBytes), fmt(c.pssBytes)].forEach((v) => { const td = document.createElement('td'); td.textContent = v; tr.appendChild(td); });
    body.appendChild(tr);
  });
}
function onPressure(p) {
  const el = document.getElementById('level'); el.textContent = p.level; el.className = 'level ' + p.level;
  document.getElementById('reasons').textContent = p.reasons.join('; ');
}
const events = new EventSource('/api/events');
events.addEventListener('sample', (e) => onSample(JSON.parse(e.data)));
events.addEventListener('pressure', (e) => onPressure(JSON.parse(e.data)));
</script></body></html>`;
