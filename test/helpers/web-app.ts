// The built web app for tests: `npm test` builds it with `npm run build` (into dist/web); a
// build into another outDir (dist-test/) gets it built here, once, before any server starts.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The web app's files next to the compiled server: what src/gateway/web-app-routes.ts serves. */
export const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));
const BUILD_SCRIPT = fileURLToPath(new URL('../../../web/build.mjs', import.meta.url));

export function ensureWebAppBuilt(): string {
  if (!existsSync(`${WEB_DIR}index.html`)) {
    const r = spawnSync(process.execPath, [BUILD_SCRIPT, WEB_DIR], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building the web app failed: ${r.stderr || r.stdout}`);
  }
  return WEB_DIR;
}
