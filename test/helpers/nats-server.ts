// A real local nats-server (Debian's package; .ci/run installs it) on a free port, with
// JetStream in a temp directory, stopped with the test. Tests that need it skip, saying so,
// where the binary is missing.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { freePort } from './child-server.js';
import { tempDataDir } from './server.js';

interface Teardown { teardown(fn: () => unknown): void }

export const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) => existsSync(p));

/** Why NATS tests cannot run here, or false: pass it to tap's `skip`. */
export const natsMissing: string | false = NATS_SERVER ? false : 'nats-server is not installed (apt-get install nats-server)';

export interface LocalNats {
  url: string;
  port: number;
  proc: ChildProcess;
  /** Ends the server at once (SIGKILL) and resolves when it has exited. */
  kill(): Promise<void>;
}

const START_LIMIT_MS = 30_000; // safety net only: the wait ends when the port accepts

export async function startNats(t: Teardown): Promise<LocalNats> {
  if (!NATS_SERVER) throw new Error(natsMissing as string);
  const port = await freePort();
  const store = tempDataDir(t);
  const proc = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  };
  t.teardown(kill);
  await waitForPort(port, exited, stderr);
  return { url: `nats://127.0.0.1:${port}`, port, proc, kill };
}

/** Resolves once the port accepts a connection; rejects if the server exits first. */
async function waitForPort(port: number, exited: Promise<void>, stderr: string[]): Promise<void> {
  const deadline = Date.now() + START_LIMIT_MS;
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    if (gone) throw new Error(`nats-server exited before listening: ${stderr.join('')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port}: ${stderr.join('')}`);
    await new Promise((r) => setTimeout(r, 20)); // polling a port that is being opened, not a timing assumption
  }
}
