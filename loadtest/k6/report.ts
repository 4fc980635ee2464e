// report.html: one self-contained file (uPlot's JS and CSS inlined) with the per-second throughput,
// VUs, latency (p50/p99 of every Trend), rates and gauges over time, and the summary tables.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fmtStat, metricLine, type SummaryJson } from './summary.js';

export interface ServerPoint {
  t: number;
  cpuPct: number;
  rssMiB: number;
}

function uplotAssets(): { js: string; css: string } {
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  } catch {
    dir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../node_modules/uplot/dist');
  }
  return {
    js: readFileSync(path.join(dir, 'uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(path.join(dir, 'uPlot.min.css'), 'utf8'),
  };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JSON that can sit inside a <script> element. */
const safeJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

interface ChartSpec {
  title: string;
  unit: string;
  series: Array<{ label: string; data: Array<number | null>; dash?: boolean }>;
  /** second y axis for series with index ≥ this (server chart: RSS) */
  split?: { from: number; unit: string };
}

function num(v: number | undefined): number | null {
  return v === undefined || !Number.isFinite(v) ? null : Math.round(v * 1000) / 1000;
}

export function buildCharts(s: SummaryJson, server: ServerPoint[]): { t: number[]; charts: ChartSpec[] } {
  const rows = s.series;
  const t = rows.map((r) => r.t + 1); // a row covers (t, t+1]: plot at its end
  const charts: ChartSpec[] = [];
  const counterNames = Object.entries(s.metrics)
    .filter(([, m]) => m.type === 'counter')
    .map(([n]) => n);
  const ordered = ['iterations', ...counterNames.filter((n) => n !== 'iterations')];
  charts.push({
    title: 'Throughput (per second): iterations and every Counter',
    unit: '/s',
    series: ordered.map((n) => ({ label: `${n}/s`, data: rows.map((r) => num(r.counters[n] ?? 0)) })),
  });
  charts.push({ title: 'Virtual users', unit: 'VUs', series: [{ label: 'vus', data: rows.map((r) => r.vus) }] });
  for (const [name, m] of Object.entries(s.metrics)) {
    if (m.type !== 'trend') continue;
    const unit = m.contains === 'time' ? 'ms' : '';
    charts.push({
      title: `${name}: p50 / p99 per second${unit ? ' (ms)' : ''}`,
      unit,
      series: [
        { label: 'p50', data: rows.map((r) => num(r.trends[name]?.p50)) },
        { label: 'p99', data: rows.map((r) => num(r.trends[name]?.p99)) },
        { label: 'max', data: rows.map((r) => num(r.trends[name]?.max)), dash: true },
      ],
    });
  }
  const rateNames = Object.entries(s.metrics)
    .filter(([, m]) => m.type === 'rate')
    .map(([n]) => n);
  if (rateNames.length > 0) {
    charts.push({
      title: 'Rates per second (%)',
      unit: '%',
      series: rateNames.map((n) => ({ label: n, data: rows.map((r) => (r.rates[n] === undefined ? null : num(r.rates[n]! * 100))) })),
    });
  }
  const gaugeNames = Object.entries(s.metrics)
    .filter(([name, m]) => m.type === 'gauge' && name !== 'vus' && name !== 'vus_max')
    .map(([n]) => n);
  for (const n of gaugeNames) {
    let last: number | null = null;
    charts.push({
      title: `${n} (gauge, last value)`,
      unit: '',
      series: [{ label: n, data: rows.map((r) => (r.gauges[n] !== undefined ? (last = num(r.gauges[n])) : last)) }],
    });
  }
  if (server.length > 0) {
    const byT = new Map(server.map((p) => [p.t, p]));
    charts.push({
      title: 'Spawned server: CPU (% of one core) and RSS (MiB)',
      unit: '% CPU',
      series: [
        { label: 'cpu %', data: rows.map((r) => num(byT.get(r.t)?.cpuPct)) },
        { label: 'rss MiB', data: rows.map((r) => num(byT.get(r.t)?.rssMiB)) },
      ],
      split: { from: 1, unit: 'MiB' },
    });
  }
  return { t, charts };
}

export function renderReport(s: SummaryJson, server: ServerPoint[]): string {
  const { js, css } = uplotAssets();
  const { t, charts } = buildCharts(s, server);

  const thresholdRows: string[] = [];
  for (const [name, m] of Object.entries(s.metrics)) {
    for (const [src, r] of Object.entries(m.thresholds ?? {})) {
      const stat = /^\s*([a-z]+(?:\([\d.]+\))?)/i.exec(src)?.[1] ?? '';
      thresholdRows.push(
        `<tr class="${r.ok ? 'ok' : 'bad'}"><td>${r.ok ? '✓' : '✗'}</td><td>${esc(name)}</td><td><code>${esc(src)}</code></td>` +
          `<td>${r.actual === null ? 'no samples' : esc(fmtStat(m, stat, r.actual))}</td></tr>`,
      );
    }
  }
  const metricRows = Object.entries(s.metrics).map(([name, m]) => {
    const th = Object.values(m.thresholds ?? {});
    const mark = th.length === 0 ? '' : th.every((r) => r.ok) ? '✓' : '✗';
    return `<tr><td>${mark}</td><td>${esc(name)}</td><td>${m.type}</td><td><code>${esc(metricLine(m))}</code></td></tr>`;
  });
  const checkRows = s.checks.map(
    (c) =>
      `<tr class="${c.fails === 0 ? 'ok' : 'bad'}"><td>${c.fails === 0 ? '✓' : '✗'}</td><td>${esc(c.name)}</td><td>${c.passes}</td><td>${c.fails}</td></tr>`,
  );
  const errorRows = s.errors.map((e) => `<tr><td>${e.count}</td><td><code>${esc(e.message)}</code></td></tr>`);
  const serverRows = Object.entries(s.server ?? {})
    .filter(([k]) => k !== 'logSamples')
    .map(([k, v]) => `<tr><td>${esc(k)}</td><td><code>${esc(typeof v === 'object' ? JSON.stringify(v) : String(v))}</code></td></tr>`);

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Parley load test: ${esc(s.script)} — ${esc(s.startedAt)}</title>
<style>${css}</style>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1300px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.meta{color:#555} table{border-collapse:collapse;margin:6px 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
tr.ok td:first-child{color:#1a7f37} tr.bad td:first-child{color:#cf222e} tr.bad{background:#fff0f0}
.verdict{font-weight:600;padding:6px 10px;display:inline-block;border-radius:4px;margin-top:8px}
.verdict.ok{background:#dafbe1;color:#1a7f37}.verdict.bad{background:#ffebe9;color:#cf222e}
.chart{margin:10px 0 18px} code{font-size:12px}
</style></head><body>
<h1>Parley load test: ${esc(s.script)}</h1>
<div class="meta">started ${esc(s.startedAt)} · timed part ${(s.durationMs / 1000).toFixed(1)} s · ${s.maxVUs} max VUs ·
${s.generators} generator processes · target ${esc(s.url)}${s.spawnedServer ? ' (spawned)' : ''} ·
${esc(String(s.machine.cores))} cores shared by the server and the generators</div>
<div class="meta">${s.scenarios.map((sc) => `${esc(sc.name)}: ${esc(sc.description)}`).join('<br>')}</div>
<div class="verdict ${s.thresholdsOk ? 'ok' : 'bad'}">${s.thresholdsOk ? 'all thresholds passed' : 'some thresholds FAILED'}</div>
${s.runnerError ? '<div class="verdict bad">runner error: a generator or the spawned server died, or teardown failed (see the notes)</div>' : ''}
${thresholdRows.length ? `<h2>Thresholds</h2><table><tr><th></th><th>metric</th><th>threshold</th><th>actual</th></tr>${thresholdRows.join('')}</table>` : ''}
<h2>Over time</h2>
<div id="charts"></div>
<h2>Summary</h2>
<table><tr><th></th><th>metric</th><th>type</th><th>values</th></tr>${metricRows.join('')}</table>
${checkRows.length ? `<h2>Checks</h2><table><tr><th></th><th>check</th><th>passes</th><th>fails</th></tr>${checkRows.join('')}</table>` : ''}
${errorRows.length ? `<h2>Errors (iterations that threw)</h2><table><tr><th>count</th><th>message</th></tr>${errorRows.join('')}</table>` : ''}
${serverRows.length ? `<h2>Server</h2><table>${serverRows.join('')}</table>` : ''}
${s.notes.length ? `<h2>Notes</h2><ul>${s.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
<script>${js}</script>
<script>
const T = ${safeJson(t)};
const CHARTS = ${safeJson(charts)};
const COLORS = ['#1f77b4','#d62728','#2ca02c','#ff7f0e','#9467bd','#8c564b','#e377c2','#7f7f7f','#bcbd22','#17becf'];
const root = document.getElementById('charts');
const width = () => Math.max(400, Math.min(1250, root.clientWidth || 1000));
const plots = [];
for (const c of CHARTS) {
  const el = document.createElement('div');
  el.className = 'chart';
  root.appendChild(el);
  const split = c.split;
  const series = [{ label: 't (s)' }].concat(c.series.map((s, i) => ({
    label: s.label,
    stroke: COLORS[i % COLORS.length],
    width: 1.5,
    dash: s.dash ? [4, 4] : undefined,
    scale: split && i >= split.from ? 'y2' : 'y',
    spanGaps: false,
  })));
  const axes = [{ label: 'seconds since start' }, { label: c.unit, scale: 'y' }];
  const scales = { x: { time: false }, y: { auto: true } };
  if (split) { axes.push({ label: split.unit, scale: 'y2', side: 1, grid: { show: false } }); scales.y2 = { auto: true }; }
  const opts = { title: c.title, width: width(), height: 280, scales, axes, series, legend: { live: true } };
  plots.push(new uPlot(opts, [T].concat(c.series.map((s) => s.data)), el));
}
addEventListener('resize', () => { for (const p of plots) p.setSize({ width: width(), height: 280 }); });
</script>
</body></html>
`;
}
