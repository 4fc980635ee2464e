// Summarizes V8 CPU profiles (.cpuprofile, as written by `node --cpu-prof`: one file per thread):
// per file, the thread's sampled time split into busy, (idle), (program) and (garbage collector),
// and the top functions by self time.
//
//   node dist/loadtest/profile-summary.js <dir or .cpuprofile files>... [--top 15] [--from-us T --to-us T]
//
// --from-us / --to-us keep only the samples taken in that interval of the profiles' clock (µs of
// CLOCK_MONOTONIC on Linux, the clock of process.hrtime()): `npm run bench -- --cpu-prof` passes
// its measured window so that setup and drain are left out. Without them, the whole profile.
// Self time of a sample = the time to the next sample (the last: to the profile's end).
// Time in a parked piscina worker's Atomics.wait loop (atomicsWaitLoop) counts as idle, not busy.
// File names `CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile`: tid 0 is the main thread.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  function: string;
  /** path:line (1-based), shortened */
  where: string;
  selfMs: number;
  /** of the thread's sampled time */
  selfPct: number;
  /** of the thread's busy time (sampled − idle) */
  busyPct: number;
}

export interface ThreadProfile {
  file: string;
  pid?: number;
  tid?: number;
  label: string;
  samples: number;
  /** sampled time (in the interval, if one was given), ms */
  totalMs: number;
  /** (idle) plus time blocked in Atomics.wait */
  idleMs: number;
  /** of which blocked in Atomics.wait (a parked piscina worker) */
  atomicsWaitMs: number;
  programMs: number;
  gcMs: number;
  busyMs: number;
  top: FunctionTime[];
}

export interface SummaryOptions {
  top?: number;
  fromUs?: number;
  toUs?: number;
}

const SPECIAL = new Set(['(root)', '(idle)', '(program)', '(garbage collector)']);
/** JS frames that only block in Atomics.wait (a parked piscina worker): waiting, not work. */
const WAITING = new Set(['atomicsWaitLoop']);
const cwd = process.cwd();

function shortUrl(url: string): string {
  if (!url) return '';
  let p = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = p.lastIndexOf('/node_modules/');
  if (nm >= 0) return p.slice(nm + 1);
  if (p.startsWith(cwd + path.sep)) p = path.relative(cwd, p);
  return p;
}

/** A worker's name: its entry script, guessed: a script named *worker*, else the first one that is not Node's own or a package's. */
function threadLabel(tid: number | undefined, nodes: ProfileNode[]): string {
  if (tid === 0) return 'main thread';
  const scripts = nodes.map((n) => n.callFrame.url).filter((u) => u && !u.startsWith('node:'));
  const ours = scripts.filter((u) => !u.includes('/node_modules/'));
  const entry = ours.find((u) => /worker[^/]*$/i.test(u)) ?? ours[0] ?? scripts[0];
  return `worker ${tid ?? '?'}${entry ? ` (${shortUrl(entry)})` : ''}`;
}

export function summarizeProfile(file: string, opts: SummaryOptions = {}): ThreadProfile {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const m = /\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(path.basename(file));
  const pid = m ? Number(m[1]) : undefined;
  const tid = m ? Number(m[2]) : undefined;
  const byId = new Map(prof.nodes.map((n) => [n.id, n.callFrame]));
  const from = opts.fromUs ?? -Infinity;
  const to = opts.toUs ?? Infinity;
  // Self time per call frame (function + position), µs.
  const self = new Map<string, { frame: CallFrame; us: number }>();
  let t = prof.startTime;
  let samples = 0;
  const n = prof.samples.length;
  for (let i = 0; i < n; i++) {
    t += prof.timeDeltas[i] ?? 0;
    const next = i + 1 < n ? t + (prof.timeDeltas[i + 1] ?? 0) : prof.endTime;
    if (t < from || t >= to) continue;
    const us = Math.max(0, Math.min(next, to) - t);
    const frame = byId.get(prof.samples[i]!);
    if (!frame) continue;
    samples++;
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}\u0000${frame.columnNumber}`;
    const e = self.get(key);
    if (e) e.us += us;
    else self.set(key, { frame, us });
  }
  let total = 0;
  const special: Record<string, number> = {};
  for (const { frame, us } of self.values()) {
    total += us;
    if (SPECIAL.has(frame.functionName) && !frame.url) special[frame.functionName] = (special[frame.functionName] ?? 0) + us;
    if (WAITING.has(frame.functionName)) special.wait = (special.wait ?? 0) + us;
  }
  const wait = special.wait ?? 0;
  const idle = (special['(idle)'] ?? 0) + wait;
  const busy = total - idle;
  const ms = (us: number) => Math.round(us / 100) / 10;
  const pct = (us: number, of: number) => (of > 0 ? Math.round((us / of) * 1000) / 10 : 0);
  const top = [...self.values()]
    .filter(({ frame }) => !(SPECIAL.has(frame.functionName) && !frame.url) && !WAITING.has(frame.functionName))
    .sort((a, b) => b.us - a.us)
    .slice(0, opts.top ?? 15)
    .map(({ frame, us }) => ({
      function: frame.functionName || '(anonymous)',
      where: frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '(native)',
      selfMs: ms(us),
      selfPct: pct(us, total),
      busyPct: pct(us, busy),
    }));
  return {
    file,
    pid,
    tid,
    label: threadLabel(tid, prof.nodes),
    samples,
    totalMs: ms(total),
    idleMs: ms(idle),
    atomicsWaitMs: ms(wait),
    programMs: ms(special['(program)'] ?? 0),
    gcMs: ms(special['(garbage collector)'] ?? 0),
    busyMs: ms(busy),
    top,
  };
}

/** .cpuprofile files named directly, or found directly in the directories named; by pid, tid. */
export function profileFiles(args: string[]): string[] {
  const files: string[] = [];
  for (const a of args) {
    if (statSync(a).isDirectory()) files.push(...readdirSync(a).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(a, f)));
    else files.push(a);
  }
  const key = (f: string) => (/\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(f) ?? []).slice(1).map(Number);
  return files.sort((x, y) => {
    const [a, b] = [key(x), key(y)];
    return (a[0] ?? 0) - (b[0] ?? 0) || (a[1] ?? 0) - (b[1] ?? 0) || x.localeCompare(y);
  });
}

export function renderProfiles(threads: ThreadProfile[]): string {
  const f = (x: number) => x.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const out: string[] = [];
  for (const p of threads) {
    out.push(`### ${p.label} — ${path.basename(p.file)}${p.pid !== undefined ? ` (pid ${p.pid}, thread ${p.tid})` : ''}`, '');
    if (p.samples === 0) {
      out.push('no samples in the interval', '');
      continue;
    }
    const share = (x: number) => (p.totalMs > 0 ? `${f(Math.round((x / p.totalMs) * 1000) / 10)} %` : '—');
    out.push(
      `sampled ${f(p.totalMs)} ms (${p.samples} samples): (idle) ${f(p.idleMs)} ms (${share(p.idleMs)}${p.atomicsWaitMs ? `, of which ${f(p.atomicsWaitMs)} ms parked in Atomics.wait` : ''}); busy ${f(p.busyMs)} ms (${share(p.busyMs)}), of which (garbage collector) ${f(p.gcMs)} ms, (program) ${f(p.programMs)} ms`,
      '',
    );
    if (p.top.length === 0) {
      out.push('no busy samples', '');
      continue;
    }
    const rows = p.top.map((t, i) => [String(i + 1), t.function, t.where, f(t.selfMs), f(t.selfPct), f(t.busyPct)]);
    const header = ['#', 'function', 'file:line', 'self ms', 'self %', '% of busy'];
    const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
    out.push(line(header), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...rows.map(line), '');
  }
  return out.join('\n');
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    strict: true,
    options: {
      top: { type: 'string', default: '15' },
      'from-us': { type: 'string' },
      'to-us': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    const src = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
    process.stdout.write(src.slice(0, src.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
    process.exit(values.help ? 0 : 2);
  }
  const num = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isFinite(x)) {
      process.stderr.write(`profile-summary: --${name} must be a number, got ${v}\n`);
      process.exit(2);
    }
    return x;
  };
  const files = profileFiles(positionals);
  if (files.length === 0) {
    process.stderr.write(`profile-summary: no .cpuprofile files in ${positionals.join(' ')}\n`);
    process.exit(1);
  }
  const opts = { top: num(values.top, 'top'), fromUs: num(values['from-us'], 'from-us'), toUs: num(values['to-us'], 'to-us') };
  process.stdout.write(renderProfiles(files.map((file) => summarizeProfile(file, opts))) + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
