// Builds the single binary (README "Single binary"): `node packaging/build-binary.mjs [--out
// dist/parley] [--web dist/web]`, run by `npm run package` after `npm run build`.
//
// A Node single executable application (node --experimental-sea-config + postject) of the Node
// that runs this script (its ABI is the one the addons are picked for), holding:
//   - the server bundled by esbuild into one CommonJS script (the SEA's main), from the
//     TypeScript sources, with packaging/sea-plugin.mjs's rewrites;
//   - the workers' bundles (the shard worker, piscina's worker with the password task), started
//     from memory (src/sea/embedded-workers.ts);
//   - files extracted at start into the cache (src/sea/asset-cache.ts): the native addons of
//     uWebSockets.js, lmdb and msgpackr-extract, the built web app, the admin dashboard's uPlot;
//   - manifest.json (src/sea/manifest.ts) describing all of it.
// Intermediate files go to a fresh temporary directory, so builds running at once do not meet.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { seaPlugin } from './sea-plugin.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

/** The fuse postject flips so Node runs the injected blob (Node's documented sentinel). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export async function buildBinary({ out = join(root, 'dist', 'parley'), web = join(root, 'dist', 'web'), log = console.log } = {}) {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`the binary is built for linux-x64, on linux-x64 (this is ${process.platform}-${process.arch})`);
  if (!existsSync(join(web, 'index.html'))) throw new Error(`no web app at ${web}: run npm run build first`);
  const work = mkdtempSync(join(tmpdir(), 'parley-package-'));
  try {
    const files = [...nativeFiles(), ...packageFiles(), ...webFiles(web)];
    const addons = { lmdb: files.find((f) => f.addon === 'lmdb').path, 'msgpackr-extract': files.find((f) => f.addon === 'msgpackr-extract').path };
    const workers = { 'actors/shard-worker.js': 'worker/shard-worker.js', 'node_modules/piscina/dist/worker.js': 'worker/password-pool.js' };

    // The bundles: the server, the shard worker, piscina's worker with the password task.
    const bundles = join(work, 'bundles');
    const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', absWorkingDir: root, logLevel: 'warning', plugins: [seaPlugin(root)], legalComments: 'none', minifySyntax: true, minifyWhitespace: true };
    await build({ ...common, entryPoints: { main: join(root, 'src', 'main.ts'), 'shard-worker': join(root, 'actors', 'shard-worker.ts') }, outdir: bundles });
    await build({
      ...common,
      stdin: {
        contents: `require(${JSON.stringify(join(root, 'src', 'sea', 'password-pool-worker.ts'))}).answerPasswordTask();\nrequire(${JSON.stringify(join(dirname(require.resolve('piscina')), 'worker.js'))});\n`,
        resolveDir: root, sourcefile: 'password-pool-entry.js', loader: 'js',
      },
      outfile: join(bundles, 'password-pool.js'),
    });

    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const addonSources = files.filter((f) => f.path.endsWith('.node')).map((f) => f.source);
    const manifest = {
      version: pkg.version,
      commit: gitCommit(),
      hash: createHash('sha256').update(files.map((f) => `${f.path}\0${f.sha256}\n`).sort().join('')).digest('hex'),
      files: files.map(({ asset, path, sha256, size }) => ({ asset, path, sha256, size })),
      addons,
      workers,
      glibc: newestVersion('GLIBC', addonSources, '2.17'),
      glibcxx: newestVersion('GLIBCXX', addonSources, ''),
      node: process.version,
    };
    writeFileSync(join(work, 'manifest.json'), JSON.stringify(manifest));
    const assets = {
      'manifest.json': join(work, 'manifest.json'),
      'worker/shard-worker.js': join(bundles, 'shard-worker.js'),
      'worker/password-pool.js': join(bundles, 'password-pool.js'),
      ...Object.fromEntries(files.map((f) => [f.asset, f.source])),
    };
    writeFileSync(join(work, 'sea-config.json'), JSON.stringify({ main: join(bundles, 'main.js'), output: join(work, 'sea.blob'), disableExperimentalSEAWarning: true, useCodeCache: true, assets }));
    execFileSync(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: 'pipe' });

    // The carrier: a copy of this Node, the blob injected (postject from devDependencies).
    const exe = join(work, 'parley');
    copyFileSync(process.execPath, exe);
    chmodSync(exe, 0o755);
    execFileSync(process.execPath, [require.resolve('postject/dist/cli.js'), exe, 'NODE_SEA_BLOB', join(work, 'sea.blob'), '--sentinel-fuse', SEA_FUSE], { stdio: 'pipe' });
    mkdirSync(dirname(out), { recursive: true });
    // Renamed into place whole: a running copy of an older build is not overwritten in place.
    const temp = `${out}.tmp-${process.pid}`;
    copyFileSync(exe, temp);
    chmodSync(temp, 0o755);
    renameSync(temp, out);
    log(`built ${relative(process.cwd(), out) || out}: ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB, node ${process.version}, needs glibc ≥ ${manifest.glibc}${manifest.glibcxx ? `, GLIBCXX_${manifest.glibcxx}` : ''}`);
    return { out, manifest };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function entry(source, path, extra = {}) {
  const body = readFileSync(source);
  return { source, path, asset: `file/${path}`, sha256: createHash('sha256').update(body).digest('hex'), size: body.length, ...extra };
}

function packageDir(name, from = root) {
  // Some packages export no ./package.json: find the directory from their main entry.
  let dir = dirname(createRequire(join(from, 'noop.js')).resolve(name));
  while (!existsSync(join(dir, 'package.json')) || JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === undefined) dir = dirname(dir);
  return dir;
}

/** The addons, as the npm install would load them on this Node (same ABI, same libc). */
function nativeFiles() {
  const uwsDir = join(root, 'node_modules', 'uWebSockets.js');
  const uwsBinary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  if (!existsSync(join(uwsDir, 'binaries', uwsBinary))) throw new Error(`uWebSockets.js has no ${uwsBinary} for Node ${process.version}`);
  const lmdbDir = packageDir('lmdb');
  const msgpackrExtractDir = packageDir('msgpackr-extract');
  // node-gyp-build-optional-packages is what both use to pick their prebuilt binary.
  const lmdbBinary = createRequire(join(lmdbDir, 'native.js'))('node-gyp-build-optional-packages').path(lmdbDir);
  const extractBinary = createRequire(join(msgpackrExtractDir, 'index.js'))('node-gyp-build-optional-packages').path(msgpackrExtractDir);
  return [
    // src/gateway/uws.ts resolves uWebSockets.js/package.json and loads binaries/ next to it.
    entry(join(uwsDir, 'package.json'), 'node_modules/uWebSockets.js/package.json'),
    entry(join(uwsDir, 'binaries', uwsBinary), `node_modules/uWebSockets.js/binaries/${uwsBinary}`),
    entry(lmdbBinary, `addons/lmdb/${basename(lmdbBinary)}`, { addon: 'lmdb' }),
    entry(extractBinary, `addons/msgpackr-extract/${basename(extractBinary)}`, { addon: 'msgpackr-extract' }),
  ];
}

/** Package files the code reads at run time by resolving them. */
function packageFiles() {
  const uplot = join(root, 'node_modules', 'uplot');
  const lmdbDir = packageDir('lmdb');
  return [
    entry(join(uplot, 'package.json'), 'node_modules/uplot/package.json'),
    entry(join(uplot, 'dist', 'uPlot.iife.min.js'), 'node_modules/uplot/dist/uPlot.iife.min.js'),
    entry(join(uplot, 'dist', 'uPlot.min.css'), 'node_modules/uplot/dist/uPlot.min.css'),
    // lmdb reads its compression dictionary next to itself when a database is compressed.
    entry(join(lmdbDir, 'dict', 'dict.txt'), 'node_modules/lmdb/dict/dict.txt'),
  ];
}

/** The built web app, where src/gateway/web-app-routes.ts looks for it (../../web from src/gateway). */
function webFiles(web) {
  const out = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(entry(p, `web/${relative(web, p)}`));
    }
  };
  walk(web);
  return out;
}

/** The newest `<prefix>_x.y[.z]` symbol version the files reference (GLIBC_2.34, GLIBCXX_3.4.29). */
function newestVersion(prefix, paths, floor) {
  let best = floor === '' ? [] : floor.split('.').map(Number);
  const newer = (a, b) => {
    for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
    return false;
  };
  for (const p of paths) {
    for (const m of readFileSync(p).toString('latin1').matchAll(new RegExp(`${prefix}_(\\d+(?:\\.\\d+)+)\\0`, 'g'))) {
      const v = m[1].split('.').map(Number);
      if (newer(v, best)) best = v;
    }
  }
  return best.join('.');
}

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return '';
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, web: { type: 'string' } } });
  buildBinary({ out: values.out && resolve(values.out), web: values.web && resolve(values.web) }).catch((err) => {
    process.stderr.write(`package: ${err.stack ?? err}\n`);
    process.exit(1);
  });
}
