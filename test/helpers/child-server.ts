// Runs the real server binary (`node dist/src/main.js`) as a child process, for tests that
// kill it (-9) or signal it, and restarts it on the same data directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer, type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';

export const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

/** A port free right now (for a server that must come back on the same port after a restart). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface ChildServer {
  proc: ChildProcess;
  port: number;
  base: string;
  wsUrl: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: string[];
}

/** What to run instead of `node dist/src/main.js` (test/binary.test.ts: the single binary). */
export interface Launch {
  command: string;
  args?: string[];
  cwd?: string;
  /** the environment the test's variables are added to (default process.env) */
  baseEnv?: NodeJS.ProcessEnv;
}

/**
 * `timeoutMs` is a safety net only: a start on a loaded 2-core machine was seen to take 12 s.
 * `dataDir` '' leaves DATA_DIR unset (the server's default, ./data).
 */
export function startChildServer(dataDir: string, env: Record<string, string> = {}, timeoutMs = 60_000, launch: Launch = { command: process.execPath, args: [MAIN] }): Promise<ChildServer> {
  const proc = spawn(launch.command, launch.args ?? [], {
    cwd: launch.cwd,
    env: { ...(launch.baseEnv ?? process.env), PORT: '0', HOST: '127.0.0.1', ...(dataDir === '' ? {} : { DATA_DIR: dataDir }), PASSWORD_COST: '10', SHARDS: '2', LOG_LEVEL: 'info', RATE_LIMITS: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  proc.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not become ready: ${stderr.join('')}`));
    }, timeoutMs);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before ready: ${stderr.join('')}`));
    });
    // The server logs JSON lines; the `ready` line carries the port it got.
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let entry: { msg?: string; port?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.msg === 'ready' && entry.port) {
        clearTimeout(timer);
        const port = entry.port;
        resolve({ proc, port, base: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/v1/ws`, exited, stderr });
      }
    });
  });
}
