// Loads uWebSockets.js's native binary directly. The package we depend on silently falls back
// to a slow pure-JS server when its binary does not load; we never want that, so we load the
// binary ourselves and fail loudly instead.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as UWS from 'uWebSockets.js';

export type { UWS };

const require = createRequire(import.meta.url);

export class NativeUwsMissing extends Error {
  override name = 'NativeUwsMissing';
}

function loadNative(): typeof UWS {
  const pkgDir = dirname(require.resolve('uWebSockets.js/package.json'));
  const binary = join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  try {
    return require(binary) as typeof UWS;
  } catch (err) {
    throw new NativeUwsMissing(
      `uWebSockets.js native binary did not load (${binary}); refusing to start on the slow JS fallback. ` +
        `Node ${process.version} (ABI ${process.versions.modules}) on ${process.platform}-${process.arch} needs a matching binary.`,
      { cause: err },
    );
  }
}

export const uws = loadNative();
