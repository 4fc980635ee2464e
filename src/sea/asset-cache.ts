// Extracts the binary's files (native addons, the web app) into a private, content-hashed cache
// directory, once: a later start finds them there and only checks them. Safe when two instances
// start at once: every file is written under a temporary name and renamed into place, so a
// reader sees either no file or a whole one.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir, userInfo } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { dirname, join, resolve } from 'node:path';
import { getAsset } from 'node:sea';
import type { EmbeddedFile, EmbeddedManifest } from './manifest.js';
import { BinaryRefusal } from './refusal.js';

export class CacheUnsafe extends BinaryRefusal {
  override name = 'CacheUnsafe';
}

/** PARLEY_CACHE_DIR, else $XDG_CACHE_HOME/parley, else ~/.cache/parley, else a per-user dir in the temp dir. */
export function cacheBase(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PARLEY_CACHE_DIR) return resolve(env.PARLEY_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'parley');
  let home = '';
  try {
    home = homedir();
  } catch {
    // no home (a service user without one): the temp dir below
  }
  if (home !== '' && home !== '/') return join(home, '.cache', 'parley');
  return join(tmpdir(), `parley-${userInfo().uid}`);
}

/** The directory of this build's files: <base>/<version>-<hash>. */
export function cacheDir(manifest: EmbeddedManifest, base = cacheBase()): string {
  return join(base, `${manifest.version}-${manifest.hash.slice(0, 16)}`);
}

/**
 * Makes `dir` hold every file of the manifest with the right content and returns it. The cache
 * directory must belong to this user and be writable by nobody else: native code is loaded from
 * it.
 */
export function extractFiles(manifest: EmbeddedManifest, dir = cacheDir(manifest)): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Its parent too: whoever may write there could swap the directory after the check.
  assertPrivate(dirname(dir));
  assertPrivate(dir);
  for (const file of manifest.files) {
    const target = join(dir, file.path);
    if (intact(target, file)) continue;
    mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    const temp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      const fd = openSync(temp, 'wx', 0o600);
      try {
        writeFileSync(fd, new Uint8Array(getAsset(file.asset)));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      chmodSync(temp, 0o400);
      renameSync(temp, target);
    } catch (err) {
      rmSync(temp, { force: true });
      throw err;
    }
  }
  return dir;
}

/** The main thread checks every byte; a worker, started after it did, only the sizes. */
function intact(path: string, file: EmbeddedFile): boolean {
  try {
    const stat = lstatSync(path);
    if (!stat.isFile() || stat.size !== file.size) return false;
    return !isMainThread || createHash('sha256').update(readFileSync(path)).digest('hex') === file.sha256;
  } catch {
    return false;
  }
}

/** `dir` (followed, if a link) belongs to this user and nobody else may write it. */
function assertPrivate(dir: string): void {
  const uid = process.getuid?.();
  const stat = statSync(dir);
  if (!stat.isDirectory()) throw new CacheUnsafe(`cache directory ${dir} is not a directory`);
  if (uid !== undefined && stat.uid !== uid) throw new CacheUnsafe(`cache directory ${dir} belongs to uid ${stat.uid}, not to this user (${uid}); set PARLEY_CACHE_DIR to a directory of your own`);
  if ((stat.mode & 0o022) !== 0) throw new CacheUnsafe(`cache directory ${dir} is writable by others (mode ${(stat.mode & 0o777).toString(8)}); set PARLEY_CACHE_DIR to a private directory`);
}
