// `parley backup <dir>`: a consistent copy of the data directory while the server runs. The
// LMDB environment is copied by LMDB itself (lmdb-js backup → mdb_env_copy2 with compaction)
// inside one read transaction: a snapshot of one commit, whatever the server writes meanwhile,
// without stopping it. Then the files beside it: media blobs (DATA_DIR/media, content-addressed
// and never rewritten) and the generated secrets. Copied after the snapshot, so every media
// record in it finds its blob (a blob is stored before its record commits). The copy is built
// under <dir>.partial-<pid> and renamed to <dir> at the end: a <dir> that exists is complete.
import { cpSync, existsSync, fsyncSync, mkdirSync, openSync, closeSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve, sep } from 'node:path';
import { loadConfig } from '../config.js';
import { openStorage } from '../../storage/env.js';
import { UsageError } from './usage.js';

/** Not copied: the LMDB files (copied by LMDB), the lock file, uploads still in progress. */
const SKIPPED = new Set(['data.mdb', 'lock.mdb', 'media-uploads']);

export async function backupCommand(argv: string[]): Promise<number> {
  const [dest, ...rest] = argv;
  if (dest === undefined || dest.startsWith('-')) throw new UsageError('backup needs a destination: parley backup <dir> [--data-dir DIR]');
  const config = loadConfig(rest, process.env);
  const started = Date.now();
  const result = await backupDataDir(resolve(config.dataDir), resolve(dest));
  process.stdout.write(`parley backup: ${resolve(config.dataDir)} → ${result.dir}: data.mdb ${(result.dataBytes / 2 ** 20).toFixed(1)} MiB, ${result.files} other files, ${Date.now() - started} ms\n`);
  return 0;
}

/** `dataDir` and `dest` are absolute. */
export async function backupDataDir(dataDir: string, dest: string): Promise<{ dir: string; dataBytes: number; files: number }> {
  if (!existsSync(join(dataDir, 'data.mdb'))) throw new UsageError(`no data directory at ${dataDir} (it has no data.mdb)`);
  if (dest === dataDir || dest.startsWith(dataDir + sep)) throw new UsageError(`${dest} is inside the data directory ${dataDir}: a backup goes elsewhere`);
  if (existsSync(dest) && (!statSync(dest).isDirectory() || readdirSync(dest).length > 0)) throw new UsageError(`${dest} exists and is not an empty directory: a backup goes to a new one`);
  const partial = join(resolve(dest, '..'), `${basename(dest)}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true, mode: 0o700 });
  try {
    const storage = openStorage(dataDir, 'relaxed', { readOnly: true });
    try {
      // LMDB writes data.mdb into the (empty) directory it is given.
      await storage.root.backup(partial, true);
    } finally {
      await storage.close();
    }
    syncFile(join(partial, 'data.mdb'));
    let files = 0;
    for (const name of readdirSync(dataDir)) {
      if (SKIPPED.has(name)) continue;
      cpSync(join(dataDir, name), join(partial, name), {
        recursive: true, preserveTimestamps: true, errorOnExist: true,
        filter: (src) => {
          if (statSync(src).isFile()) files++;
          return true;
        },
      });
    }
    if (existsSync(dest)) rmSync(dest, { recursive: true });
    renameSync(partial, dest);
    return { dir: dest, dataBytes: statSync(join(dest, 'data.mdb')).size, files };
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    throw err;
  }
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
