// Where the single binary's code "lives": the cache directory its files were extracted to, laid
// out like a checkout (node_modules/…, web/…). packaging/ rewrites every `import.meta.url` (and a
// CommonJS module's `__dirname`) of the bundled code to a URL under it, so code that finds files
// next to itself (the web app, uWebSockets.js's binary, the worker scripts) finds them there.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { extractFiles } from './asset-cache.js';
import { requireSystemLibraries } from './glibc.js';
import { embeddedManifest, type EmbeddedManifest } from './manifest.js';

let root: string | undefined;

function manifestOrThrow(): EmbeddedManifest {
  const manifest = embeddedManifest();
  if (!manifest) throw new Error('not running as the single binary');
  return manifest;
}

/**
 * The extracted tree: extracted on the first call of the process (after checking that the
 * system's glibc and libstdc++ suit the addons), then reused.
 */
export function embeddedRoot(): string {
  if (root === undefined) {
    const manifest = manifestOrThrow();
    requireSystemLibraries(manifest);
    root = extractFiles(manifest);
  }
  return root;
}

/** The absolute path of `rel` (a checkout-relative path such as src/gateway/uws.js) in the tree. */
export function embeddedPath(rel: string): string {
  return join(embeddedRoot(), rel);
}

/** What `import.meta.url` is for the bundled module that was at `rel`. */
export function embeddedUrl(rel: string): string {
  return pathToFileURL(embeddedPath(rel)).href;
}
