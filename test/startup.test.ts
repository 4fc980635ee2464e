// Start-up of the real binary: --help, invalid configuration, and the refusal to run on
// uWebSockets.js's slow pure-JS fallback when the native binary does not load.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDataDir } from './helpers/server.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const run = (args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []) =>
  spawnSync(process.execPath, [...nodeArgs, MAIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });

t.test('--help lists the options and exits 0', async (t) => {
  const r = run(['--help']);
  t.equal(r.status, 0);
  t.match(r.stdout, /--durability\s+DURABILITY/);
});

t.test('an invalid option stops start-up with exit 2 and a message naming it', async (t) => {
  const r = run([], { DURABILITY: 'maybe', DATA_DIR: tempDataDir(t) });
  t.equal(r.status, 2);
  t.match(r.stderr, /invalid DURABILITY: must be one of fsync, relaxed/);
});

t.test('refuses to start when the native uWebSockets.js binary does not load', async (t) => {
  // A preload that makes every uws_*.node binary fail to load, as an ABI mismatch would.
  const dir = tempDataDir(t);
  const preload = join(dir, 'break-uws.cjs');
  writeFileSync(preload, `
    const Module = require('node:module');
    const load = Module._extensions['.node'];
    Module._extensions['.node'] = (m, file) => {
      if (/uws_.*\\.node$/.test(file)) throw new Error('simulated: wrong ABI');
      return load(m, file);
    };`);
  const r = run([], { DATA_DIR: dir, PORT: '0' }, ['--require', preload]);
  t.equal(r.status, 1, 'exits non-zero');
  t.match(r.stderr, /native binary did not load.*refusing to start on the slow JS fallback/s);
  t.notMatch(r.stdout, /"msg":"ready"/, 'never became ready');
});
