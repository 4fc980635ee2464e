// Smoke test of the load-test runner (loadtest/run.ts) with the chat-1to1 scenario against a server it
// spawns itself: a short run with thresholds a busy 2-core machine cannot miss exits 0 and writes
// summary.json and report.html; an impossible threshold exits 99 (as k6 does).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

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
