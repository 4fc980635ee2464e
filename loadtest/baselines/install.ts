// The Socket.IO + SQLite baseline's own packages (socket.io, socket.io-client, better-sqlite3):
// they live in loadtest/baselines/node_modules, an install of their own (loadtest/baselines/
// package.json + package-lock.json), so that the server's `npm ci` neither downloads them nor
// compiles SQLite. `npm run bench` installs them the first time a run needs the socketio target.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to <repo>/dist/loadtest/baselines/install.js (or dist-test/...): the sources sit at <repo>/loadtest/baselines.
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const baselineDir = path.join(repo, 'loadtest', 'baselines');

const PACKAGES = ['socket.io', 'socket.io-client', 'better-sqlite3'] as const;

/** `require` that resolves from loadtest/baselines (its node_modules), not from the server's tree. */
export const baselineRequire = createRequire(path.join(baselineDir, 'package.json'));

/** Why the baseline's packages cannot be loaded yet, or undefined when they are installed and current. */
export function baselineMissing(): string | undefined {
  const marker = path.join(baselineDir, 'node_modules', '.package-lock.json'); // npm writes it after a complete install
  if (!existsSync(marker)) return 'loadtest/baselines/node_modules is not installed';
  if (statSync(marker).mtimeMs < statSync(path.join(baselineDir, 'package-lock.json')).mtimeMs) return 'loadtest/baselines/package-lock.json changed since the last install';
  for (const name of PACKAGES) {
    try {
      baselineRequire.resolve(name);
    } catch {
      return `${name} is missing from loadtest/baselines/node_modules`;
    }
  }
  return undefined;
}

/**
 * Installs the baseline's packages when they are missing (`npm ci --prefix loadtest/baselines`,
 * which compiles better-sqlite3 unless a prebuilt one can be had). Returns undefined when they are
 * ready, or the reason they are not (the bench then reports the socketio target as failed and
 * runs the others).
 */
export function ensureBaselineInstall(log: (msg: string) => void): string | undefined {
  const why = baselineMissing();
  if (!why) return undefined;
  log(`[socketio] ${why}: installing the Socket.IO + better-sqlite3 baseline once (npm ci --prefix loadtest/baselines; compiling SQLite can take a few minutes)`);
  const t0 = Date.now();
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['ci', '--prefix', baselineDir, '--no-audit', '--no-fund'], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15 * 60_000 });
  if (r.error) return `npm ci --prefix loadtest/baselines could not run: ${r.error.message}`;
  if (r.status !== 0) return `npm ci --prefix loadtest/baselines failed (exit ${r.status ?? r.signal}); see its output above`;
  const still = baselineMissing();
  if (still) return `npm ci --prefix loadtest/baselines finished but ${still}`;
  log(`[socketio] baseline installed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return undefined;
}
