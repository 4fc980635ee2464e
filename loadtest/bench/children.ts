// Child processes of a benchmark: one registry of everything started (killed with SIGKILL on
// exit, whatever happened), polite stops (SIGTERM, then SIGKILL), time-bounded and abortable
// phases, and forked load generators that talk over the IPC channel.
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { sleep } from './proc.js';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

export function alive(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/** Registers a child (or a temp dir) for the last-resort cleanup at exit. */
export function track(p: ChildProcess): ChildProcess {
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}
export function trackDir(dir: string): string {
  tempDirs.add(dir);
  return dir;
}
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Synchronous last resort (process exit): SIGKILL every child we started, remove temp dirs. */
export function killEverythingSync(): void {
  for (const p of children) if (alive(p)) p.kill('SIGKILL');
  children.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', killEverythingSync);

export interface StopResult {
  exitCode: number | null;
  signal: string | null;
  ms: number;
  killed: boolean;
}

/** SIGTERM, wait up to `ms`, then SIGKILL (and wait up to 5 s more for the exit). */
export async function stopProcess(p: ChildProcess, ms: number): Promise<StopResult> {
  const t0 = Date.now();
  let killed = false;
  if (alive(p)) {
    const exited = new Promise<void>((res) => p.once('exit', () => res()));
    p.kill('SIGTERM');
    if (!(await Promise.race([exited.then(() => true), sleep(ms).then(() => false)]))) {
      killed = true;
      p.kill('SIGKILL');
      await Promise.race([exited, sleep(5000)]);
    }
  }
  children.delete(p);
  return { exitCode: p.exitCode, signal: p.signalCode, ms: Date.now() - t0, killed };
}

/** Aborts the phases of the running target (server died, generator failed, watchdog, signal). */
export class Abort {
  reason?: Error;
  private rejecters = new Set<(e: Error) => void>();
  fire(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    for (const r of this.rejecters) r(reason);
    this.rejecters.clear();
  }
  /** Rejects with a clear message when `p` takes longer than ms, or when aborted. */
  phase<T>(name: string, ms: number, p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.reason) return reject(new Error(`phase "${name}": ${this.reason.message}`));
      const done = () => {
        clearTimeout(t);
        this.rejecters.delete(onAbort);
      };
      const onAbort = (e: Error) => {
        clearTimeout(t);
        reject(new Error(`phase "${name}": ${e.message}`));
      };
      this.rejecters.add(onAbort);
      const t = setTimeout(() => {
        this.rejecters.delete(onAbort);
        reject(new Error(`phase "${name}" exceeded its time bound of ${ms / 1000} s`));
      }, ms);
      p.then(
        (v) => {
          done();
          resolve(v);
        },
        (e: unknown) => {
          done();
          reject(new Error(`phase "${name}": ${(e as Error)?.message ?? String(e)}`));
        },
      );
    });
  }
}

// ------------------------------------------------------------------ forked generators

interface Typed {
  type: string;
}

/** A forked child with an inbox of its IPC messages; `{type: 'fatal', error}` aborts. */
export class Gen<To extends Typed, From extends Typed> {
  readonly proc: ChildProcess;
  private inbox: From[] = [];
  private waiters: Array<() => void> = [];
  closing = false;

  constructor(
    readonly label: string,
    main: string,
    abort: Abort,
    env: NodeJS.ProcessEnv,
  ) {
    const proc = fork(main, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } });
    this.proc = track(proc);
    proc.on('message', (m: unknown) => {
      const msg = m as From & { error?: string };
      if (msg.type === 'fatal') abort.fire(new Error(`generator ${label} (pid ${proc.pid}): ${msg.error}`));
      this.inbox.push(msg);
      this.wake();
    });
    proc.on('exit', (code, signal) => {
      if (!this.closing && code !== 0) abort.fire(new Error(`generator ${label} (pid ${proc.pid}) exited: code ${code} signal ${signal}`));
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  tell(msg: To): void {
    if (this.proc.connected) this.proc.send(msg);
  }

  /** The next message of `type` (taken from the inbox); rejects when the child has exited. */
  async expect<T extends From['type']>(type: T): Promise<Extract<From, { type: T }>> {
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<From, { type: T }>;
      if (!alive(this.proc)) throw new Error(`generator ${this.label} exited before sending ${type}`);
      await new Promise<void>((res) => this.waiters.push(res));
    }
  }

  /** A message of `type` already received, if any (not taken). */
  peek<T extends From['type']>(type: T): Extract<From, { type: T }> | undefined {
    return this.inbox.find((m) => m.type === type) as Extract<From, { type: T }> | undefined;
  }

  kill(): void {
    this.closing = true;
    if (alive(this.proc)) this.proc.kill('SIGKILL');
  }
}

/** Sends `close` to every generator, waits (bounded) for `closed` and the exit, kills the rest. */
export async function closeGenerators<To extends Typed, From extends Typed>(gens: Array<Gen<To, From>>, close: To): Promise<void> {
  for (const g of gens) {
    g.closing = true;
    g.tell(close);
  }
  await Promise.race([Promise.all(gens.map((g) => g.expect('closed').catch(() => undefined))), sleep(12_000)]);
  await Promise.all(gens.map((g) => (alive(g.proc) ? Promise.race([new Promise((res) => g.proc.once('exit', res)), sleep(2000)]) : undefined)));
  for (const g of gens) g.kill();
}
