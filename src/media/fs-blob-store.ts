// Blobs as files under one directory (DATA_DIR/media by default): written to a temp name in the
// same directory and renamed into place once size and hash matched, so a reader never sees a
// partial file and a crash leaves only temp files (removed at start).
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { link, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobExpectation, BlobStore, ByteRange } from './blob-store.js';
import { HashingCounter } from './hashing-counter.js';

const TEMP_PREFIX = '.tmp-';

export class FsBlobStore implements BlobStore {
  readonly kind = 'fs';

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir)) if (name.startsWith(TEMP_PREFIX)) rmSync(join(dir, name), { force: true });
  }

  private path(key: string): string {
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(key)) throw new Error(`bad blob key ${JSON.stringify(key)}`);
    return join(this.dir, key);
  }

  async put(key: string, source: Readable, expect: BlobExpectation): Promise<void> {
    const final = this.path(key);
    const temp = join(this.dir, `${TEMP_PREFIX}${randomUUID()}`);
    try {
      await pipeline(source, new HashingCounter(expect), createWriteStream(temp, { flags: 'wx', flush: true }));
      // link, not rename: an existing blob (the same content uploaded before) is kept as it is.
      await link(temp, final).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      await syncDirectory(this.dir); // the new name is on disk too before the upload is answered

    } finally {
      await rm(temp, { force: true });
    }
  }

  async adopt(key: string, file: string): Promise<void> {
    await link(file, this.path(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    await syncDirectory(this.dir);
  }

  async stat(key: string): Promise<{ size: number } | null> {
    try {
      return { size: (await stat(this.path(key))).size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable | null> {
    if ((await this.stat(key)) === null) return null;
    return createReadStream(this.path(key), range ? { start: range.start, end: range.end } : {});
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async presignGet(): Promise<string | null> {
    return null;
  }

  async close(): Promise<void> {}
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
