// Builds the web chat app (README "Web app") into static files: `node web/build.mjs [outDir]`
// (default dist/web, next to the compiled server, which serves it: src/gateway/web-app-routes.ts).
// esbuild bundles web/src/main.tsx (Preact, the SDK in client/, msgpackr) and web/style.css into
// content-hashed files under assets/, and writes index.html naming them; then the service worker
// (web/src/service-worker.ts) into sw.js, at the root so that its scope is the whole app, with the
// list of the shell's files it caches and a cache name that changes with them. Type-checking is
// `tsc -p web/tsconfig.json`, run by `npm run build` before this.
import { createHash } from 'node:crypto';
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Builds into `outDir`; answers the first-load files with their sizes. */
export async function buildWebApp(outDir = resolve(here, '..', 'dist', 'web')) {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(join(outDir, 'assets'), { recursive: true });
  const result = await build({
    entryPoints: { app: join(here, 'src', 'main.tsx'), style: join(here, 'style.css') },
    outdir: join(outDir, 'assets'),
    entryNames: '[name]-[hash]',
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    // client/media.ts reads files with node:fs when it runs in Node; never in a browser.
    external: ['node:*'],
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });
  const outputs = Object.entries(result.metafile.outputs).map(([path, o]) => ({ path, entry: o.entryPoint ?? '' }));
  const find = (suffix) => basename(outputs.find((o) => o.entry.endsWith(suffix)).path);
  const html = readFileSync(join(here, 'index.html'), 'utf8')
    .replace('%APP_JS%', `/assets/${find('main.tsx')}`)
    .replace('%STYLE_CSS%', `/assets/${find('style.css')}`);
  writeFileSync(join(outDir, 'index.html'), html);
  await buildServiceWorker(outDir, ['/', ...outputs.map((o) => `/assets/${basename(o.path)}`)], html);
  return outDir;
}

/** sw.js: a classic script (every browser with service workers runs those), not hashed (its URL is its identity). */
async function buildServiceWorker(outDir, shell, html) {
  const version = createHash('sha256').update(html).digest('base64url').slice(0, 16);
  await build({
    entryPoints: [join(here, 'src', 'service-worker.ts')],
    outfile: join(outDir, 'sw.js'),
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    define: { APP_SHELL: JSON.stringify(shell), SHELL_CACHE: JSON.stringify(`parley-shell-${version}`) },
    legalComments: 'none',
    logLevel: 'warning',
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildWebApp(process.argv[2] ? resolve(process.argv[2]) : undefined);
}
