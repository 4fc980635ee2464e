// The operators' history and dashboard (docs/protocol.md §8.7): `GET /v1/admin/series` (one
// series of the metrics history) and `GET /admin`, one static page plotting them with uPlot
// (served from node_modules: /admin/uplot.js, /admin/uplot.css). Mounted on the main port
// (routes.ts, the series behind ADMIN_TOKEN) and on the admin port (admin-app.ts, open).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { SERIES, SERIES_NAMES, type MetricsHistory, type SeriesName } from '../metrics-history.js';
import type { Reply } from './http.js';

type Get<R> = (pattern: string, handler: (reply: Reply, req: R) => void) => void;

/**
 * Mounts the four routes. `guardSeries` throws for a request that may not read the series (the
 * main port's admin check); `guardPage` for a port where the page is not served (it carries no
 * data: its script asks the series with the token the operator pastes).
 */
export function mountAdminDashboard<R extends { query: string }>(get: Get<R>, history: MetricsHistory, guardSeries: (req: R) => void, guardPage: () => void): void {
  get('/v1/admin/series', (reply, req) => {
    guardSeries(req);
    reply.json(200, seriesAnswer(history, req.query));
  });
  get('/admin', (reply) => {
    guardPage();
    reply.text(200, DASHBOARD_HTML, 'text/html; charset=utf-8');
  });
  get('/admin/uplot.js', (reply) => {
    guardPage();
    reply.text(200, asset('uplot/dist/uPlot.iife.min.js'), 'application/javascript; charset=utf-8');
  });
  get('/admin/uplot.css', (reply) => {
    guardPage();
    reply.text(200, asset('uplot/dist/uPlot.min.css'), 'text/css; charset=utf-8');
  });
}

/** `metric=&from=&to=` (ms since the epoch; default the last 15 minutes) → the series' points. */
export function seriesAnswer(history: MetricsHistory, query: string, now = Date.now()) {
  const q = new URLSearchParams(query);
  const metric = q.get('metric') ?? '';
  if (!(SERIES_NAMES as string[]).includes(metric)) {
    throw new ProtocolError(ErrorCode.bad_frame, `unknown metric ${JSON.stringify(metric)}; known: ${SERIES_NAMES.join(', ')}`);
  }
  const time = (name: string, fallback: number) => {
    const raw = q.get(name);
    if (raw === null || raw === '') return fallback;
    if (!/^\d{1,16}$/.test(raw)) throw new ProtocolError(ErrorCode.bad_frame, `${name} must be a time in ms since the epoch`);
    return Number(raw);
  };
  const to = time('to', now);
  const from = time('from', to - 15 * 60_000);
  if (from > to) throw new ProtocolError(ErrorCode.bad_frame, 'from must not be after to');
  const s = history.series(metric as SeriesName, from, to);
  return { ...s, kind: SERIES[metric as SeriesName].kind };
}

const assets = new Map<string, string>();
function asset(path: string): string {
  let text = assets.get(path);
  if (text === undefined) assets.set(path, (text = readFileSync(createRequire(import.meta.url).resolve(path), 'utf8')));
  return text;
}

const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parley — operators</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/admin/uplot.css">
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; background: #111; color: #ddd; }
  header { display: flex; gap: 1rem; align-items: center; padding: .6rem 1rem; background: #1b1b1b; flex-wrap: wrap; }
  h1 { font-size: 1.1rem; margin: 0 1rem 0 0; }
  button { background: #333; color: #ddd; border: 1px solid #555; padding: .25rem .7rem; cursor: pointer; }
  button.on { background: #2a5d8f; border-color: #4b8bd0; }
  #now { display: flex; flex-wrap: wrap; gap: .6rem; padding: .8rem 1rem; }
  .num { background: #1b1b1b; border-radius: 6px; padding: .5rem .9rem; min-width: 8rem; }
  .num b { display: block; font-size: 2rem; font-variant-numeric: tabular-nums; color: #fff; }
  .num span { color: #999; font-size: .8rem; }
  #plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: .8rem; padding: 0 1rem 1rem; }
  .plot { background: #fff; color: #222; border-radius: 6px; padding: .4rem; }
  #login { padding: 1rem; display: none; }
  #status { color: #e77; }
  #updated { color: #888; margin-left: auto; }
</style></head>
<body>
<header><h1>Parley</h1>
  <span>range</span>
  <button data-range="900000" class="on">15 min</button><button data-range="3600000">1 h</button><button data-range="86400000">24 h</button>
  <span id="status"></span><span id="updated"></span>
</header>
<form id="login"><label>Admin token <input id="token" type="password" size="40" autocomplete="off"></label> <button>Use</button>
  <span> (kept in this tab only: sessionStorage)</span></form>
<section id="now"></section>
<section id="plots"></section>
<script src="/admin/uplot.js"></script>
<script>
"use strict";
const NUMBERS = [
  ['connections', 'connections', 0], ['messages', 'messages/s', 0], ['send_p50_ms', 'send p50 ms', 2],
  ['send_p99_ms', 'send p99 ms', 2], ['errors', 'errors/s', 0], ['rate_limited', 'rate-limited/s', 0],
  ['frames_out', 'frames out/s', 0], ['channel_deliveries', 'channel deliveries/s', 0],
  ['commit_p99_ms', 'commit p99 ms', 2], ['cpu_percent', 'CPU % (process)', 0], ['shard_cpu_max_percent', 'busiest shard CPU %', 0],
];
const PLOTS = [
  { title: 'connections', series: [['connections', '#1f77b4']] },
  { title: 'messages/s, frames out/s and channel deliveries/s', series: [['messages', '#2ca02c'], ['frames_out', '#9467bd'], ['channel_deliveries', '#17becf']] },
  { title: 'send latency (ms, from histogram buckets)', series: [['send_p50_ms', '#1f77b4'], ['send_p99_ms', '#d62728']] },
  { title: 'errors/s and rate-limit rejections/s', series: [['errors', '#d62728'], ['rate_limited', '#ff7f0e']] },
  { title: 'commit latency (ms, seal to durable: fsync included)', series: [['commit_p50_ms', '#1f77b4'], ['commit_p99_ms', '#d62728']] },
  { title: 'CPU % of one core: whole process and the busiest shard', series: [['cpu_percent', '#8c564b'], ['shard_cpu_max_percent', '#e377c2']] },
];
let range = 900000;
let token = sessionStorage.getItem('parleyAdminToken') || '';
const plots = new Map();
const $ = (id) => document.getElementById(id);

for (const [metric, label] of NUMBERS) {
  const d = document.createElement('div');
  d.className = 'num';
  d.innerHTML = '<b id="n-' + metric + '">–</b><span>' + label + '</span>';
  $('now').appendChild(d);
}
document.querySelectorAll('button[data-range]').forEach((b) => b.addEventListener('click', () => {
  document.querySelectorAll('button[data-range]').forEach((o) => o.classList.toggle('on', o === b));
  range = Number(b.dataset.range);
  refresh();
}));
$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value.trim();
  sessionStorage.setItem('parleyAdminToken', token);
  $('login').style.display = 'none';
  refresh();
});

class NeedToken extends Error {}
async function series(metric, from, to) {
  const res = await fetch('/v1/admin/series?metric=' + metric + '&from=' + from + '&to=' + to,
    { headers: token ? { authorization: 'Bearer ' + token } : {} });
  if (res.status === 401) throw new NeedToken();
  if (!res.ok) throw new Error(metric + ': HTTP ' + res.status);
  return res.json();
}

function plotWidth() { return Math.max(300, Math.min(($('plots').clientWidth - 40) / (window.innerWidth > 1100 ? 2 : 1), 1600) - 20); }

function draw(spec, results, from, to) {
  // One x axis (seconds) for the plot's series: the union of their points, null where one has none.
  const xs = [...new Set(results.flatMap((r) => r.points.map((p) => p[0])))].sort((a, b) => a - b);
  const data = [xs.map((t) => t / 1000)];
  for (const r of results) {
    const m = new Map(r.points);
    data.push(xs.map((t) => (m.has(t) ? m.get(t) : null)));
  }
  let u = plots.get(spec.title);
  if (!u) {
    const div = document.createElement('div');
    div.className = 'plot';
    $('plots').appendChild(div);
    u = new uPlot({
      title: spec.title, width: plotWidth(), height: 220,
      scales: { x: { time: true }, y: { range: (_u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
      series: [{}, ...spec.series.map(([name, stroke]) => ({ label: name, stroke, width: 1.5, spanGaps: false }))],
    }, data, div);
    plots.set(spec.title, u);
  } else {
    u.setData(data, false);
  }
  u.setScale('x', { min: from / 1000, max: to / 1000 });
}

function show(metric, digits, r) {
  const p = r.points[r.points.length - 1];
  $('n-' + metric).textContent = p ? Number(p[1]).toFixed(digits) : '–';
}

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const to = Date.now();
    const from = to - range;
    const recent = await Promise.all(NUMBERS.map(([m]) => series(m, to - 10000, to)));
    NUMBERS.forEach(([m, , digits], i) => show(m, digits, recent[i]));
    for (const spec of PLOTS) draw(spec, await Promise.all(spec.series.map(([m]) => series(m, from, to))), from, to);
    $('status').textContent = '';
    $('updated').textContent = 'updated ' + new Date(to).toLocaleTimeString();
  } catch (err) {
    if (err instanceof NeedToken) {
      $('login').style.display = 'block';
      $('status').textContent = token ? 'the admin token was refused' : 'paste the admin token';
    } else {
      $('status').textContent = String(err && err.message || err);
    }
  } finally {
    busy = false;
  }
}
window.addEventListener('resize', () => { for (const u of plots.values()) u.setSize({ width: plotWidth(), height: 220 }); });
refresh();
setInterval(refresh, 5000);
</script>
</body></html>
`;
