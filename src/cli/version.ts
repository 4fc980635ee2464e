// `parley version`: the package version, the commit a binary was built from, the Node it runs on.
import { readFileSync } from 'node:fs';
import { embeddedManifest } from '../sea/manifest.js';

export function versionLine(): string {
  const manifest = embeddedManifest();
  if (manifest) {
    return `parley ${manifest.version}${manifest.commit ? ` (${manifest.commit})` : ''} single binary, node ${process.version}, ${process.platform}-${process.arch}`;
  }
  // dist/src/cli/version.js → the checkout's package.json
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `parley ${pkg.version} node ${process.version}, ${process.platform}-${process.arch}`;
}
