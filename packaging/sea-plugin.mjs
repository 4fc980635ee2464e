// The esbuild plugin that makes the bundled server run from the single binary
// (packaging/build-binary.mjs):
//   - `import.meta.url` (empty in a CommonJS bundle) becomes the URL the module would have under
//     the extracted tree (src/sea/embedded-root.ts): src/gateway/web-app-routes.ts still finds
//     ../../web, uws.ts its binary, cluster.ts ./shard-worker.js. CommonJS modules of
//     node_modules get the same for `__dirname` / `__filename` (piscina finds its worker.js).
//   - node:worker_threads is src/sea/embedded-workers.ts, whose Worker starts the embedded
//     worker scripts from memory.
//   - lmdb's and msgpackr-extract's loaders (node-gyp-build-optional-packages, which searches
//     node_modules) are replaced by src/sea/native-addons.ts (process.dlopen of the extracted file).
//   - ordered-binary (lmdb's key encoding) is taken in its CommonJS build: its ES module reads
//     strings with a direct eval that names a module variable, which the bundler renames when it
//     joins modules into one scope (the eval then reads another module's `position` and lmdb's
//     key reads never end). Inside a CommonJS wrapper its variables keep their names.
//   - piscina's optional @napi-rs/nice addon is left out.
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

export function seaPlugin(root) {
  const sea = join(root, 'src', 'sea');
  const workers = join(sea, 'embedded-workers.ts');
  const embeddedRoot = JSON.stringify(join(sea, 'embedded-root.ts'));
  const nativeAddons = JSON.stringify(join(sea, 'native-addons.ts'));

  /** The file's path in a checkout's layout: node_modules/<pkg>/… or relative to the root, .ts as .js. */
  const checkoutPath = (file) => {
    const at = file.lastIndexOf(`${sep}node_modules${sep}`);
    const rel = at >= 0 ? file.slice(at + 1) : relative(root, file);
    return rel.split(sep).join('/').replace(/\.ts$/, '.js');
  };

  return {
    name: 'parley-sea',
    setup(b) {
      b.onResolve({ filter: /^ordered-binary$/ }, async (args) => {
        if (args.pluginData === 'cjs') return undefined;
        const found = await b.resolve('ordered-binary', { kind: 'require-call', resolveDir: args.resolveDir, pluginData: 'cjs' });
        return { path: found.path };
      });
      // src/sea/ itself (the substitute among them) keeps the real module.
      b.onResolve({ filter: /^(node:)?worker_threads$/ }, (args) => (args.importer.startsWith(sea + sep) ? undefined : { path: workers }));
      b.onResolve({ filter: /^node-gyp-build-optional-packages$/ }, (args) => {
        if (!args.importer.includes(`${sep}lmdb${sep}`)) throw new Error(`unexpected native loader user ${args.importer}: teach packaging/sea-plugin.mjs its addon`);
        return { path: 'lmdb', namespace: 'parley-addon' };
      });
      b.onResolve({ filter: /^msgpackr-extract$/ }, () => ({ path: 'msgpackr-extract', namespace: 'parley-addon' }));
      // piscina's optional thread priority (niceIncrement, which we never set): not carried. A
      // module that throws, so nothing is looked up on disk.
      b.onResolve({ filter: /^@napi-rs\/nice$/ }, () => ({ path: 'nice', namespace: 'parley-absent' }));
      b.onLoad({ filter: /.*/, namespace: 'parley-absent' }, (args) => ({ contents: `throw new Error('${args.path} is not in the parley binary');\n`, loader: 'js' }));
      b.onLoad({ filter: /.*/, namespace: 'parley-addon' }, (args) => ({
        // lmdb calls its loader with its directory; msgpackr-extract's module is the addon itself.
        contents: args.path === 'lmdb'
          ? `import { loadEmbeddedAddon } from ${nativeAddons};\nexport default () => loadEmbeddedAddon('lmdb');\n`
          : `module.exports = require(${nativeAddons}).loadEmbeddedAddon('msgpackr-extract');\n`,
        resolveDir: root,
        loader: 'js',
      }));

      b.onLoad({ filter: /\.(ts|js|mjs|cjs)$/ }, async (args) => {
        if (args.path.startsWith(sea + sep)) return undefined;
        const text = await readFile(args.path, 'utf8');
        const usesUrl = text.includes('import.meta.url');
        const inModules = args.path.includes(`${sep}node_modules${sep}`);
        const usesDir = inModules && !args.path.endsWith('.mjs') && /\b__(dirname|filename)\b/.test(text);
        if (!usesUrl && !usesDir) return undefined;
        const path = checkoutPath(args.path);
        let contents = text;
        let tail = '';
        if (usesUrl) {
          contents = contents.replaceAll('import.meta.url', `__parleyEmbeddedUrl(${JSON.stringify(path)})`);
          tail += `\nimport { embeddedUrl as __parleyEmbeddedUrl } from ${embeddedRoot};\n`;
        }
        if (usesDir) {
          contents = contents
            .replace(/\b__dirname\b/g, `__parleyEmbeddedPath(${JSON.stringify(dirname(path))})`)
            .replace(/\b__filename\b/g, `__parleyEmbeddedPath(${JSON.stringify(path)})`);
          // A hoisted function at the end: before it would push a "use strict" out of first place.
          tail += `\nfunction __parleyEmbeddedPath(rel) { return require(${embeddedRoot}).embeddedPath(rel); }\n`;
        }
        const loader = args.path.endsWith('.ts') ? 'ts' : 'js';
        return { contents: contents + tail, loader, resolveDir: dirname(args.path) };
      });
    },
  };
}
