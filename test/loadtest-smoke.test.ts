// Smoke test of the load-test runner (loadtest/run.ts) with the chat-1to1 scenario against a server it
// spawns itself: a short run with thresholds a busy 2-core machine cannot miss exits 0 and writes
// summary.json and report.html; an impossible threshold exits 99 (as k6 does).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { LogHistogram } from '../loadtest/k6/histogram.js';
import { buildPlan, rampTarget, splitPlan } from '../loadtest/k6/options.js';
import { compare, parseThresholdArg, parseThresholds } from '../loadtest/k6/thresholds.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..'); // dist/test → repo
const RUNNER = path.join(repo, 'dist', 'loadtest', 'run.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runLoadtest(args: string[], timeoutMs = 40_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUNNER, ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    // SIGINT first: the runner then stops its generators and its server.
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-loadtest-smoke-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('histogram quantiles are within 1 %, min/max/count exact', async (t) => {
  const h = new LogHistogram();
  for (let i = 1; i <= 10_000; i++) h.add(i / 10); // 0.1 .. 1000 ms
  t.equal(h.count, 10_000);
  t.equal(h.min, 0.1);
  t.equal(h.max, 1000);
  for (const [q, want] of [
    [0.5, 500],
    [0.9, 900],
    [0.99, 990],
  ] as const) {
    const got = h.quantile(q);
    t.ok(Math.abs(got - want) / want < 0.011, `p(${q * 100}) = ${got} ≈ ${want}`);
  }
  const merged = LogHistogram.fromWire(h.toWire());
  merged.merge(h.toWire());
  t.equal(merged.count, 20_000);
  t.equal(merged.quantile(0.5), h.quantile(0.5));
});

t.test('thresholds and plans parse like k6', async (t) => {
  const th = parseThresholds({ delivery_latency: ['p(99)<50', 'avg<=10'], checks: ['rate>0.999'] });
  t.same(
    th.map((x) => [x.metric, x.stat, x.op, x.value]),
    [
      ['delivery_latency', 'p(99)', '<', 50],
      ['delivery_latency', 'avg', '<=', 10],
      ['checks', 'rate', '>', 0.999],
    ],
  );
  const arg = parseThresholdArg('delivery_latency=p(99)<0');
  t.equal(arg.metric, 'delivery_latency');
  t.equal(arg.source, 'p(99)<0');
  t.throws(() => parseThresholdArg('delivery_latency=p99<1'));
  t.equal(compare(NaN, '<', 1), false, 'no samples never passes');

  const plan = buildPlan(
    {
      scenarios: {
        a: { executor: 'constant-vus', vus: 4, duration: '10s' },
        b: { executor: 'ramping-vus', startVUs: 0, stages: [{ duration: '10s', target: 10 }, { duration: '10s', target: 0 }] },
        c: { executor: 'constant-arrival-rate', rate: 100, timeUnit: '1s', duration: '5s', preAllocatedVUs: 5, maxVUs: 20 },
      },
    },
    { vus: 6 },
  );
  t.same(
    plan.scenarios.map((s) => [s.name, s.vuOffset, s.maxVUs]),
    [
      ['a', 0, 6],
      ['b', 6, 6],
      ['c', 12, 6],
    ],
    '--vus applies to every scenario; VU ids do not overlap',
  );
  t.equal(rampTarget(plan.scenarios[1]!, 5000), 3, 'linear ramp');
  t.equal(rampTarget(plan.scenarios[1]!, 15000), 3);
  const shares = splitPlan(plan, 2);
  const ids = shares.flatMap((sh) => Object.values(sh).flatMap((x) => x.ids)).sort((x, y) => x - y);
  t.same(ids, Array.from({ length: 18 }, (_, i) => i + 1), 'every VU id in exactly one generator');
  t.ok(Math.abs(shares[0]!.c!.rate + shares[1]!.c!.rate - 100) < 1e-9, 'the arrival rate is split, not copied');
});

t.test('chat-1to1: a short run with safe thresholds passes and writes its report', async (t) => {
  const out = tempDir(t);
  const r = await runLoadtest([
    'loadtest/chat-1to1.ts',
    '--spawn',
    '--vus',
    '10',
    '--duration',
    '3s',
    '--out',
    out,
    '--no-thresholds',
    '--threshold',
    'checks=rate>0.99',
    '--threshold',
    'delivery_latency=p(99)<5000',
    '--quiet',
  ]);
  t.equal(r.code, 0, 'exit code 0', { stdout: r.stdout, stderr: r.stderr });
  t.match(r.stdout, /delivery_latency/, 'the summary lists delivery_latency');
  t.match(r.stdout, /✓ 'p\(99\)<5000'/, 'the threshold is shown as passed');

  const summaryPath = path.join(out, 'summary.json');
  t.ok(existsSync(summaryPath), 'summary.json written');
  const summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
  t.ok(summary.metrics.delivery_latency.values.count > 0, 'delivery_latency has samples');
  t.ok(summary.metrics.messages_delivered.values.count > 0, 'messages were delivered');
  t.equal(summary.metrics.checks.values.fails, 0, 'no check failed');
  t.equal(summary.thresholdsOk, true);
  t.ok(Array.isArray(summary.series) && summary.series.length >= 2, 'a per-second series');

  const reportPath = path.join(out, 'report.html');
  t.ok(existsSync(reportPath), 'report.html written');
  const html = readFileSync(reportPath, 'utf8');
  t.match(html, /uPlot/, 'report.html embeds uPlot');
  t.notMatch(html, /<script[^>]+src=/, 'no external scripts');
});

t.test('an impossible threshold makes the runner exit 99', async (t) => {
  const out = tempDir(t);
  const r = await runLoadtest([
    'loadtest/chat-1to1.ts',
    '--spawn',
    '--vus',
    '4',
    '--duration',
    '2s',
    '--out',
    out,
    '--no-thresholds',
    '--threshold',
    'delivery_latency=p(99)<0',
    '--quiet',
  ]);
  t.equal(r.code, 99, 'exit code 99', { stdout: r.stdout, stderr: r.stderr });
  t.match(r.stdout, /✗ 'p\(99\)<0'/, 'the failed threshold is marked');
  const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8'));
  t.equal(summary.thresholdsOk, false);
  t.equal(summary.metrics.delivery_latency.thresholds['p(99)<0'].ok, false);
});

t.test('bad arguments exit 1', async (t) => {
  const r = await runLoadtest(['loadtest/no-such-script.ts', '--quiet'], 15_000);
  t.equal(r.code, 1, 'exit code 1', { stderr: r.stderr });
  t.match(r.stderr, /no-such-script/);
});
