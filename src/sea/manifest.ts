// What packaging/build-binary.mjs embeds next to the bundled code in the single binary: the files
// to extract (native addons, the web app, the few package files code resolves at run time), the
// worker scripts started from memory, and what the addons need of the system.
import { getAsset, isSea } from 'node:sea';

/** The asset that holds this manifest as JSON. */
export const MANIFEST_ASSET = 'manifest.json';

export interface EmbeddedFile {
  /** SEA asset key */
  asset: string;
  /** where it goes under the cache directory (the layout of a checkout: node_modules/…, web/…) */
  path: string;
  sha256: string;
  size: number;
}

export interface EmbeddedManifest {
  version: string;
  commit: string;
  /** sha256 over every file's path and hash: names the cache directory */
  hash: string;
  files: EmbeddedFile[];
  /** native addon name (lmdb, msgpackr-extract) → its path in `files` */
  addons: Record<string, string>;
  /** a worker's script path as the code names it (actors/shard-worker.js) → the asset of its bundle */
  workers: Record<string, string>;
  /** the newest GLIBC_x.y symbol version any addon needs */
  glibc: string;
  /** the newest GLIBCXX_x.y.z (libstdc++) symbol version any addon needs ('' = none) */
  glibcxx: string;
  /** the Node version the binary carries */
  node: string;
}

let manifest: EmbeddedManifest | null | undefined;

/** The manifest when running as the single binary, else null (node dist/src/main.js). */
export function embeddedManifest(): EmbeddedManifest | null {
  if (manifest === undefined) manifest = isSea() ? (JSON.parse(getAsset(MANIFEST_ASSET, 'utf8')) as EmbeddedManifest) : null;
  return manifest;
}
