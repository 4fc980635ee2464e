// The SDK as a package of its own (docs/sdk.md): client/ imports only itself and protocol/, bundles
// for browsers without Node built-ins, and resolves by its package name through client/package.json.
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import t from 'tap';

// dist-test/test/x.js → the repository root (sources are read, not the compiled copies)
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLIENT = join(ROOT, 'client');

/** Module specifiers a TypeScript file imports at run time (type-only imports and comments excluded). */
function runtimeImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  for (const m of code.matchAll(/^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+'([^']+)'/gm)) if (!m[2]) out.push(m[3]);
  for (const m of code.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) {
    if (!/typeof\s+$/.test(code.slice(0, m.index))) out.push(m[1]);
  }
  return out;
}

t.test('client/ imports only itself and protocol/', async (t) => {
  const files = readdirSync(CLIENT).filter((f) => f.endsWith('.ts'));
  t.ok(files.length > 10, 'the SDK sources are found');
  const foreign: string[] = [];
  for (const f of files) {
    for (const spec of runtimeImports(readFileSync(join(CLIENT, f), 'utf8'))) {
      if (!spec.startsWith('./') && !spec.startsWith('../protocol/')) foreign.push(`${f}: ${spec}`);
    }
  }
  t.same(foreign, [], 'no import from src/, actors/, storage/, node: or other packages');
});

t.test('bundles for the browser (no Node built-ins) and by its package name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-sdk-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A consumer that has the package in its node_modules: resolved through client/package.json "exports".
  mkdirSync(join(dir, 'node_modules', '@parley'), { recursive: true });
  symlinkSync(CLIENT, join(dir, 'node_modules', '@parley', 'client'), 'dir');
  writeFileSync(
    join(dir, 'app.ts'),
    "import { ParleyClient, MemoryPersistence, IndexedDbPersistence } from '@parley/client';\n" +
      'export const made = [ParleyClient, MemoryPersistence, IndexedDbPersistence].map((c) => c.name);\n',
  );
  const result = await build({
    entryPoints: [join(dir, 'app.ts')],
    absWorkingDir: dir,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    minify: true,
    write: false,
    logLevel: 'silent',
    metafile: true,
  });
  t.same(result.errors, [], 'no bundling error (a node: import would be one)');
  const js = result.outputFiles[0]!.contents;
  const inputs = Object.keys(result.metafile!.inputs);
  t.ok(inputs.some((i) => i.includes('client/index.ts') || i.includes('@parley/client/index.ts')), 'the package resolved to client/index.ts');
  t.notOk(inputs.some((i) => /\/(src|actors|storage)\//.test(i)), 'nothing of the server is bundled');
  const gz = gzipSync(js).length;
  t.comment(`SDK bundle for browsers: ${js.length} bytes minified, ${gz} gzip`);
  t.ok(js.length < 150_000, `stays small: ${js.length} bytes minified`);
});
