// The single binary (README "Single binary"): built by packaging/build-binary.mjs, copied into an
// empty directory with nothing else (no node_modules, no dist, a bare PATH and HOME), it serves
// with ./data, two users exchange a message with the SDK, SIGTERM ends it with 0; its files are
// extracted once into the cache and reused, repaired when damaged, and two instances extracting
// at once both work; --help, --version and config answer without starting anything; health asks
// a running server's /readyz.
import t from 'tap';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configHelp } from '../src/config.js';
import { buildTestBinary, run } from './helpers/binary.js';
import { startChildServer } from './helpers/child-server.js';
import { client, connect, newDevice, newUser } from './helpers/server.js';

function emptyDir(t: { teardown(fn: () => unknown): void }, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An environment with nothing of this machine's Node set-up in it. */
const bareEnv = (home: string): NodeJS.ProcessEnv => ({ PATH: '/usr/bin:/bin', HOME: home });

let binary = '';
t.before(async () => {
  binary = await buildTestBinary(t);
});

t.test('from an empty directory: serves with ./data, two users exchange a message, SIGTERM exits 0; a restart reuses the cache', async (t) => {
  const dir = emptyDir(t, 'parley-bin-run-');
  copyFileSync(binary, join(dir, 'parley'));
  chmodSync(join(dir, 'parley'), 0o755);
  t.same(readdirSync(dir), ['parley'], 'the directory holds the binary only');
  const launch = { command: './parley', cwd: dir, baseEnv: bareEnv(dir) };

  const first = await startChildServer('', {}, 60_000, launch);
  t.teardown(() => first.proc.kill('SIGKILL'));
  t.equal((await fetch(`${first.base}/readyz`)).status, 200, '/readyz is 200');
  t.ok(existsSync(join(dir, 'data', 'data.mdb')), 'the data is in ./data');
  const page = await fetch(`${first.base}/`);
  t.equal(page.status, 200, 'the embedded web app is served');
  t.match(await page.text(), /<title>Parley<\/title>/);
  t.equal((await fetch(`${first.base}/admin/uplot.js`)).status, 200, 'the dashboard script is served');

  // Registration and login hash passwords on piscina's worker; messages go through the shards' workers.
  const [ann, bob] = [await newUser(first, 'ann'), await newUser(first, 'bob')];
  const annPhone = await connect(t, first, await newDevice(first, ann));
  const bobPhone = client(t, first, await newDevice(first, bob));
  const got = new Promise<{ body?: string; from: string }>((resolve) => bobPhone.on('msg', (m) => resolve(m as { body?: string; from: string })));
  await bobPhone.connect();
  const ack = await annPhone.send({ to: bob.user, body: 'hello from the binary' });
  t.equal(ack.seq, 1);
  const msg = await got;
  t.equal(msg.body, 'hello from the binary', 'bob receives it live');
  t.equal(msg.from, ann.user);
  const history = await bobPhone.history({ thread: ack.thread, limit: 10 });
  t.same(history.messages.map((m) => m.body), ['hello from the binary'], 'history reads it back from LMDB');
  await annPhone.close();
  await bobPhone.close();

  const health = await run('./parley', ['health', '--port', String(first.port), '--host', '127.0.0.1'], { cwd: dir, env: bareEnv(dir) });
  t.equal(health.code, 0, 'parley health: ready');
  t.match(health.stdout, `http://127.0.0.1:${first.port}/readyz ready`);

  first.proc.kill('SIGTERM');
  t.same(await first.exited, { code: 0, signal: null }, 'SIGTERM: exit 0');
  // A server that is not ready (here a stand-in answering 503, on a port this test holds).
  const draining = createServer((_req, res) => res.writeHead(503).end('draining'));
  await new Promise<void>((resolve) => draining.listen(0, '127.0.0.1', resolve));
  t.teardown(() => draining.close());
  const drainingPort = (draining.address() as AddressInfo).port;
  const down = await run('./parley', ['health', '--port', String(drainingPort), '--host', '127.0.0.1'], { cwd: dir, env: bareEnv(dir) });
  t.equal(down.code, 1, 'parley health of a server that is not ready: 1');
  t.match(down.stderr, `http://127.0.0.1:${drainingPort}/readyz answered 503 draining`);

  // The cache: ~/.cache/parley/<version>-<hash>, private; a second start finds it and writes nothing.
  const base = join(dir, '.cache', 'parley');
  const [entry] = readdirSync(base);
  t.match(entry, /^\d+\.\d+\.\d+-[0-9a-f]{16}$/, 'one content-hashed cache directory');
  t.equal(statSync(join(base, entry)).mode & 0o077, 0, 'private to the user');
  // Only addons, the web app and package files: no server code, no worker script (they run from memory).
  t.same(readdirSync(join(base, entry)).sort(), ['addons', 'node_modules', 'web']);
  t.same(readdirSync(join(base, entry, 'node_modules')).sort(), ['lmdb', 'uWebSockets.js', 'uplot']);
  const addonDir = join(base, entry, 'addons', 'lmdb');
  const addon = join(addonDir, readdirSync(addonDir)[0]);
  const before = statSync(addon);
  const second = await startChildServer('', {}, 60_000, launch);
  t.teardown(() => second.proc.kill('SIGKILL'));
  t.equal((await fetch(`${second.base}/readyz`)).status, 200);
  const after = statSync(addon);
  t.same([after.ino, after.mtimeMs], [before.ino, before.mtimeMs], 'the second start reused the extracted addon');
  const annAgain = await connect(t, second, await newDevice(second, ann, 'laptop'));
  t.same((await annAgain.history({ thread: ack.thread, limit: 10 })).messages.map((m) => m.body), ['hello from the binary'], 'the message survived the restart');
  await annAgain.close();
  second.proc.kill('SIGTERM');
  t.same(await second.exited, { code: 0, signal: null });

  const check = await run('./parley', ['check'], { cwd: dir, env: bareEnv(dir) });
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /is consistent \(1 threads, 1 messages/, 'parley check passes on ./data');
});

t.test('--help lists every option with its flag and env var; --version and version name the build', async (t) => {
  const dir = emptyDir(t, 'parley-bin-help-');
  const help = await run(binary, ['--help'], { cwd: dir, env: bareEnv(dir) });
  t.equal(help.code, 0);
  for (const line of configHelp().split('\n').filter((l) => l.startsWith('  --'))) t.ok(help.stdout.includes(line), `help has ${line.trim().split(/\s+/).slice(0, 2).join(' ')}`);
  for (const command of ['backup <dir>', 'check [dir]', 'config', 'health', 'version']) t.ok(help.stdout.includes(`parley ${command}`), `help names parley ${command}`);
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const arg of ['--version', 'version', '-v']) {
    const v = await run(binary, [arg], { cwd: dir, env: bareEnv(dir) });
    t.equal(v.code, 0);
    t.match(v.stdout, new RegExp(`^parley ${version.replaceAll('.', '\\.')} .*single binary, node ${process.version}`), `${arg}: ${v.stdout.trim()}`);
  }
  const config = await run(binary, ['config', '--port', '1234'], { cwd: dir, env: { ...bareEnv(dir), ADMIN_TOKEN: 'a'.repeat(40) } });
  t.equal(config.code, 0);
  t.match(JSON.parse(config.stdout), { port: 1234, dataDir: './data', adminToken: '***' }, 'parley config: the effective options, secrets masked');
  const bad = await run(binary, ['frobnicate'], { cwd: dir, env: bareEnv(dir) });
  t.equal(bad.code, 2);
  t.match(bad.stderr, /unknown command "frobnicate"/);
  const badFlag = await run(binary, ['--port', 'eighty'], { cwd: dir, env: bareEnv(dir) });
  t.equal(badFlag.code, 2);
  t.match(badFlag.stderr, /invalid --port/);
  t.same(readdirSync(dir), [], 'help, version, config and refusals extract nothing and write no data');
});

t.test('the cache: two instances extracting at once both work; a damaged file is replaced; a cache others may write is refused', async (t) => {
  const dir = emptyDir(t, 'parley-bin-cache-');
  const data = join(dir, 'data');
  // A data directory to check: made by a first run of check's own kind (an empty LMDB env).
  const seed = await startChildServer(data, {}, 60_000, { command: binary, cwd: dir, baseEnv: { ...bareEnv(dir), PARLEY_CACHE_DIR: join(dir, 'seed-cache') } });
  seed.proc.kill('SIGTERM');
  t.equal((await seed.exited).code, 0);

  const cache = join(dir, 'cache');
  const env = { ...bareEnv(dir), PARLEY_CACHE_DIR: cache };
  const both = await Promise.all([run(binary, ['check', data], { cwd: dir, env }), run(binary, ['check', data], { cwd: dir, env })]);
  for (const r of both) t.equal(r.code, 0, `an instance extracting at the same time works: ${r.stderr}`);
  const [entry] = readdirSync(cache);
  const leftovers = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? leftovers(join(d, e.name)) : /\.tmp-/.test(e.name) ? [e.name] : []));
  t.same(leftovers(join(cache, entry)), [], 'no temporary files left behind');

  const addonDir = join(cache, entry, 'addons', 'lmdb');
  const addon = join(addonDir, readdirSync(addonDir)[0]);
  const size = statSync(addon).size;
  chmodSync(addon, 0o600);
  truncateSync(addon, 1000);
  const repaired = await run(binary, ['check', data], { cwd: dir, env });
  t.equal(repaired.code, 0, repaired.stderr);
  t.equal(statSync(addon).size, size, 'a truncated addon is extracted again');

  const shared = join(dir, 'shared-cache');
  mkdirSync(shared);
  chmodSync(shared, 0o777);
  const refused = await run(binary, ['check', data], { cwd: dir, env: { ...env, PARLEY_CACHE_DIR: shared } });
  t.equal(refused.code, 1);
  t.match(refused.stderr, /is writable by others .*PARLEY_CACHE_DIR/, 'refused with the reason and the way out');
});
