// node:worker_threads as the bundled code sees it in the single binary (packaging/ substitutes
// this module for it): a Worker asked for one of the embedded worker scripts (the shards'
// actors/shard-worker.js, piscina's worker) runs that script's bundle from the binary's assets
// (eval), not a file on disk. Everything else is node:worker_threads itself.
import { relative } from 'node:path';
import { getAsset } from 'node:sea';
import { fileURLToPath } from 'node:url';
import * as threads from 'node:worker_threads';
import { embeddedRoot } from './embedded-root.js';
import { embeddedManifest } from './manifest.js';

export * from 'node:worker_threads';

const scripts = new Map<string, string>();

/** The bundle to run for `filename`, or undefined when it is not one of the embedded workers. */
function embeddedScript(filename: string | URL): string | undefined {
  const manifest = embeddedManifest();
  if (!manifest) return undefined;
  const path = filename instanceof URL ? fileURLToPath(filename) : filename.startsWith('file:') ? fileURLToPath(filename) : filename;
  const asset = manifest.workers[relative(embeddedRoot(), path)];
  if (asset === undefined) return undefined;
  let code = scripts.get(asset);
  if (code === undefined) scripts.set(asset, (code = getAsset(asset, 'utf8')));
  return code;
}

export class Worker extends threads.Worker {
  constructor(filename: string | URL, options: threads.WorkerOptions = {}) {
    const code = options.eval ? undefined : embeddedScript(filename);
    super(code ?? filename, code === undefined ? options : { ...options, eval: true });
  }
}
