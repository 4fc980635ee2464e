// Small helpers for scenario scripts: a shared high-resolution clock, bounded-concurrency pools,
// bulk account creation for setup(), and reading the server's Prometheus /metrics.
import { performance } from 'node:perf_hooks';
import { login, register } from '../../client/index.js';

/** Epoch milliseconds with sub-millisecond resolution; comparable across processes of one machine. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Runs fn over items with at most `limit` at a time; rejects on the first failure (the rest stop). */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const runners = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  });
  await Promise.all(runners);
  return out;
}

/** Rejects after `ms` with a message naming `what`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export interface LoadUser {
  username: string;
  user: string;
  token: string;
  device: string;
}

/** A short random tag so that repeated runs against one server never collide on usernames. */
export function runTag(): string {
  return (Date.now().toString(36).slice(-5) + Math.random().toString(36).slice(2, 5)).toLowerCase();
}

/**
 * Registers `count` users named `<prefix><tag>_<i>` and logs each in `devices` times (default 1):
 * entry i*devices + d is device d of user i. Bounded concurrency; each call retried a few times on
 * 429/503/network errors. With `exact`, the names are `<prefix><i>` and a name that is already
 * taken is reused (logged in), so a re-run against a long-lived server skips the sign-ups.
 */
export async function createUsers(
  base: string,
  opts: { count: number; prefix?: string; exact?: boolean; devices?: number; concurrency?: number; password?: string; log?: (msg: string) => void },
): Promise<LoadUser[]> {
  const prefix = opts.prefix ?? 'lt';
  const devices = opts.devices ?? 1;
  const password = opts.password ?? 'loadtest-password-1';
  const tag = opts.exact ? '' : `${runTag()}_`;
  const names = Array.from({ length: opts.count }, (_, i) => `${prefix}${tag}${i}`);
  if (names.some((n) => n.length > 32)) throw new Error(`createUsers: prefix "${prefix}" makes usernames longer than 32 characters`);
  const ids = new Array<string>(opts.count);
  const t0 = Date.now();
  let lastLog = t0;
  const progress = (what: string, done: number, total: number) => {
    if (opts.log && Date.now() - lastLog > 2000) {
      lastLog = Date.now();
      opts.log(`${what}: ${done}/${total}`);
    }
  };
  let done = 0;
  await pool(names, opts.concurrency ?? 16, async (username, i) => {
    try {
      ids[i] = (await retry(() => register(base, { username, password }), `register ${username}`)).user;
    } catch (err) {
      // Taken: with `exact` that is a user of an earlier run; its id comes with the login below.
      if (!opts.exact || !/taken|conflict/i.test((err as Error).message)) throw err;
    }
    progress('registered', ++done, names.length);
  });
  const slots = Array.from({ length: opts.count * devices }, (_, k) => k);
  done = 0;
  return pool(slots, opts.concurrency ?? 16, async (k) => {
    const i = Math.floor(k / devices);
    const device = `lt-${k % devices}`;
    const r = await retry(() => login(base, { username: names[i]!, password, device }), `login ${names[i]}`);
    progress('logged in', ++done, slots.length);
    return { username: names[i]!, user: ids[i] ?? r.user, token: r.token, device: r.device };
  });
}

async function retry<T>(fn: () => Promise<T>, what: string, attempts = 5): Promise<T> {
  let last: unknown;
  for (let a = 0; a < attempts; a++) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      const code = (err as { code?: string })?.code;
      if (code !== 'rate_limited' && code !== 'unavailable' && code !== 'internal') break;
      const wait = Number((err as { retry?: number })?.retry) || 200 * 2 ** a;
      await new Promise((res) => setTimeout(res, Math.min(wait, 5000)));
    }
  }
  throw new Error(`${what}: ${(last as Error)?.message ?? last}`);
}

/** GET /metrics → {name (with labels as written): value}, numbers only. */
export async function serverMetrics(base: string, timeoutMs = 5000): Promise<Record<string, number>> {
  const res = await fetch(`${base.replace(/\/+$/, '')}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp <= 0) continue;
    const v = Number(line.slice(sp + 1));
    if (Number.isFinite(v)) out[line.slice(0, sp)] = v;
  }
  return out;
}
