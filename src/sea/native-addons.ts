// Loads the native addons of lmdb and msgpackr-extract from the extracted tree with
// process.dlopen: in the binary, packaging/ replaces their loaders (node-gyp-build-optional-packages,
// which looks through node_modules) with calls of this. uWebSockets.js needs nothing here: its own
// loader (src/gateway/uws.ts) finds its binary under the tree like in a checkout.
import { embeddedManifest } from './manifest.js';
import { embeddedPath } from './embedded-root.js';

const loaded = new Map<string, unknown>();

export function loadEmbeddedAddon(name: string): unknown {
  let exports = loaded.get(name);
  if (exports !== undefined) return exports;
  const rel = embeddedManifest()?.addons[name];
  if (rel === undefined) throw new Error(`the binary carries no native addon ${name}`);
  const module = { exports: {} as unknown };
  process.dlopen(module, embeddedPath(rel));
  loaded.set(name, (exports = module.exports));
  return exports;
}
