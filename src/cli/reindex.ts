// `parley reindex [dir] [options]`: rebuilds every thread's search blocks from its log
// (storage/search-reindex.ts): what was sent while SEARCH was off becomes findable, and an index
// in doubt is made anew. The server must be stopped — its thread actors are the blocks' only
// writers — so a data directory another live process has open is refused.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { openStorage } from '../../storage/env.js';
import { reindexThread } from '../../storage/search-reindex.js';
import { UsageError } from './usage.js';

export async function reindexCommand(argv: string[]): Promise<number> {
  const positional = argv[0] !== undefined && !argv[0].startsWith('-') ? argv[0] : undefined;
  const config = loadConfig(positional === undefined ? argv : argv.slice(1), process.env);
  const dir = resolve(positional ?? config.dataDir);
  if (!existsSync(join(dir, 'data.mdb'))) throw new UsageError(`no data directory at ${dir} (it has no data.mdb)`);
  const started = Date.now();
  const storage = openStorage(dir, 'fsync');
  try {
    const others = otherReaders(storage.root.readerList());
    if (others.length > 0) {
      process.stderr.write(`parley reindex: ${dir} is open in process ${others.join(', ')} (a running server?): stop it first\n`);
      return 1;
    }
    let threads = 0;
    let blocks = 0;
    for (const thread of storage.db.threads.getKeys()) {
      blocks += reindexThread(storage, thread as string);
      threads++;
    }
    await storage.root.flushed;
    process.stdout.write(`parley reindex: ${dir}: ${threads} threads, ${blocks} search blocks, ${Date.now() - started} ms\n`);
    return 0;
  } finally {
    await storage.close();
  }
}

/** Live processes other than this one in LMDB's reader table (lines "pid thread txnid"). */
function otherReaders(table: string): number[] {
  const pids = new Set<number>();
  for (const line of table.split('\n')) {
    const pid = Number(line.trim().split(/\s+/)[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) pids.add(pid);
  }
  return [...pids];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
