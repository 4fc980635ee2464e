// The single binary and the command line for tests. The binary is built once per test file by
// packaging/build-binary.mjs (from the sources, with the web app of the compiled tree) into a
// temp directory of its own, so a build never meets `npm test`'s or another file's; CI that ran
// `npm run package` already can hand it over with PARLEY_BINARY.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MAIN } from './child-server.js';
import { ensureWebAppBuilt } from './web-app.js';

interface Teardown { teardown(fn: () => unknown): void }

const BUILD_SCRIPT = fileURLToPath(new URL('../../../packaging/build-binary.mjs', import.meta.url));

export async function buildTestBinary(t: Teardown): Promise<string> {
  if (process.env.PARLEY_BINARY) return process.env.PARLEY_BINARY;
  const dir = mkdtempSync(join(tmpdir(), 'parley-binary-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'parley');
  await promisify(execFile)(process.execPath, [BUILD_SCRIPT, '--out', out, '--web', ensureWebAppBuilt()], { maxBuffer: 1 << 24 });
  return out;
}

export interface Run { code: number | null; stdout: string; stderr: string }

/** Runs `command args` to its end (asynchronously: a server in this process keeps serving). */
export function run(command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `node dist/src/main.js args…`: the command line without the binary. */
export function runMain(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return run(process.execPath, [MAIN, ...args], { env });
}
