// /proc sampling for the benchmarks and the load-test runner (Linux): CPU ticks of processes and
// threads, RSS and its split, the machine's busy share, and the processes that are not ours.
// Every reader returns NaN (or an empty map) for a process that has gone instead of throwing.
import { execSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));
export const round = (x: number, d = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : NaN);

/** Clock ticks per second of utime/stime in /proc/<pid>/stat. */
export const CLK_TCK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime in clock ticks of a process, or of one of its threads. */
export function cpuTicks(pid: number, tid?: number | string): number {
  try {
    const s = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    return Number(rest[11]) + Number(rest[12]); // utime (14), stime (15)
  } catch {
    return NaN;
  }
}

export interface Mem {
  rss: number;
  /** anonymous: heaps, native allocations */
  anon: number;
  /** file-backed and shared: code, LMDB's memory map */
  file: number;
  threads: number;
}

/** Memory of a process from /proc/<pid>/status, KiB. */
export function memKiB(pid: number): Mem {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') + (field('RssShmem') || 0), threads: field('Threads') };
  } catch {
    return { rss: NaN, anon: NaN, file: NaN, threads: NaN };
  }
}

/** CPU ticks of every process on the machine (kernel threads included), to name what else ran. */
export function allProcTicks(): Map<number, { comm: string; ticks: number }> {
  const out = new Map<number, { comm: string; ticks: number }>();
  let names: string[] = [];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = readFileSync(`/proc/${name}/stat`, 'utf8');
      const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      out.set(Number(name), { comm, ticks: Number(rest[11]) + Number(rest[12]) });
    } catch {
      // gone
    }
  }
  return out;
}

export function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 90);
  } catch {
    return '';
  }
}

/** CPU ticks per thread of a process (Node names its worker threads "node" too: label by tid). */
export function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(tid === String(pid) ? 'main' : `${name}:${tid}`, cpuTicks(pid, tid));
    } catch {
      // ended
    }
  }
  return out;
}

/** Whole machine, all cores: busy and total ticks (idle and iowait are not busy). */
export function systemTicks(): { busy: number; total: number; iowait: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total, iowait: f[4] ?? 0 };
  } catch {
    return { busy: NaN, total: NaN, iowait: NaN };
  }
}

/** Machine busy over `ms`, percent of all cores. */
export async function machineBusy(ms: number): Promise<number> {
  const a = systemTicks();
  await sleep(ms);
  const b = systemTicks();
  return round(((b.busy - a.busy) / Math.max(1, b.total - a.total)) * 100);
}

/** Waits (at most maxMs) for the machine to be under 15 % busy over 1 s; returns the last reading. */
export async function waitQuiet(maxMs: number, log: (msg: string) => void): Promise<number> {
  const deadline = Date.now() + maxMs;
  let busy = await machineBusy(1000);
  if (busy > 15) log(`machine ${busy}% busy before the measurement (other jobs?); waiting up to ${maxMs / 1000} s for it to quiet down`);
  while (busy > 15 && Date.now() < deadline) busy = await machineBusy(1000);
  return busy;
}

/** Allocated size of the files directly in `dir`, KiB (LMDB's data.mdb is sparse: blocks, not length). */
export function dirSizeKiB(dir: string): number {
  let bytes = 0;
  try {
    for (const name of readdirSync(dir)) {
      try {
        bytes += statSync(path.join(dir, name)).blocks * 512;
      } catch {
        // gone
      }
    }
  } catch {
    return NaN;
  }
  return Math.round(bytes / 1024);
}

// ------------------------------------------------------------------ CPU over an interval

export interface Snap {
  at: number;
  server: number;
  serverMain: number;
  gens: number[];
  parent: number;
  system: { busy: number; total: number; iowait: number };
  rssKiB: number;
}

export function snap(serverPid: number, genPids: number[]): Snap {
  return {
    at: performance.now(),
    server: cpuTicks(serverPid),
    serverMain: cpuTicks(serverPid, serverPid),
    gens: genPids.map((p) => cpuTicks(p)),
    parent: cpuTicks(process.pid),
    system: systemTicks(),
    rssKiB: memKiB(serverPid).rss,
  };
}

export interface CpuUse {
  seconds: number;
  /** percent of one core */
  serverPct: number;
  serverMainThreadPct: number;
  generatorsPct: number[];
  benchParentPct: number;
  /** whole machine, percent of all cores */
  machineBusyPct: number;
  machineIowaitPct: number;
  /** CPU of processes that are neither the server nor this benchmark, percent of one core */
  otherProcessesPct: number;
}

export function cpuBetween(a: Snap, b: Snap): CpuUse {
  const secs = (b.at - a.at) / 1000;
  const pct = (d: number) => round((d / CLK_TCK / secs) * 100);
  const cores = os.cpus().length;
  const sysTotal = Math.max(1, b.system.total - a.system.total);
  const machineBusyShare = (b.system.busy - a.system.busy) / sysTotal;
  const ours = b.server - a.server + b.gens.reduce((s, t, i) => s + (t - a.gens[i]), 0) + (b.parent - a.parent);
  return {
    seconds: round(secs, 2),
    serverPct: pct(b.server - a.server),
    serverMainThreadPct: pct(b.serverMain - a.serverMain),
    generatorsPct: b.gens.map((t, i) => pct(t - a.gens[i])),
    benchParentPct: pct(b.parent - a.parent),
    machineBusyPct: round(machineBusyShare * 100),
    machineIowaitPct: round(((b.system.iowait - a.system.iowait) / sysTotal) * 100),
    // /proc/stat counts the ticks of all cores: busy core-seconds = busy share × cores × seconds.
    otherProcessesPct: Math.max(0, round(machineBusyShare * cores * 100 - (ours / CLK_TCK / secs) * 100)),
  };
}
