// k6-style durations: '30s', '1m30s', '500ms', '2h', '1.5s', '0s'; a bare number string means seconds
// (as on the command line: --duration 30), a number value means milliseconds (as in k6's JSON config).

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, us: 0.001, µs: 0.001 };

export function parseDuration(v: string | number | undefined, what = 'duration'): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw new Error(`${what}: bad duration ${v}`);
    return v;
  }
  if (typeof v !== 'string' || v.trim() === '') throw new Error(`${what}: missing duration`);
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (consumed !== s.length || consumed === 0) throw new Error(`${what}: bad duration "${v}" (use e.g. 30s, 1m30s, 500ms)`);
  return total;
}

/** 75_000 → '1m15s', 1500 → '1.5s', 250 → '250ms'. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${trim(ms / 1000, 1)}s`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${h ? `${h}h` : ''}${m || h ? `${m}m` : ''}${s}s`;
}

function trim(n: number, digits: number): string {
  return n.toFixed(digits).replace(/\.?0+$/, '');
}
