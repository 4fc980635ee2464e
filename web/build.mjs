// Builds the web chat app (README "Web app") into static files: `node web/build.mjs [outDir]`
// (default dist/web, next to the compiled server, which serves it: src/gateway/web-app-routes.ts).
// esbuild bundles web/src/main.tsx (Preact, the SDK in client/, msgpackr) and web/style.css into
// content-hashed files under assets/, and writes index.html naming them. Type-checking is
// `tsc -p web/tsconfig.json`, run by `npm run build` before this.
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
  return outDir;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildWebApp(process.argv[2] ? resolve(process.argv[2]) : undefined);
}
