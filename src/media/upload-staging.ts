// Resumable uploads (docs/protocol.md "Media"): the chunks of a `Content-Range` upload are
// appended to a part file on local disk, whatever the blob store, until the declared size is
// reached; then the whole part file goes through the store's checked put. `HEAD` reports the
// offset received so far, so a client on a bad network resends only what is missing.
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export class UploadStaging {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private path(media: string): string {
    // Media ids are `m:` + base64url; ':' is kept out of file names.
    return join(this.dir, media.replace(/[^A-Za-z0-9_-]/g, '_') + '.part');
  }

  /** Bytes received so far (0 when nothing is staged). */
  async offset(media: string): Promise<number> {
    try {
      return (await stat(this.path(media))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
  }

  /** Appends a chunk that starts at the current offset; at most `limit` bytes are taken. */
  async append(media: string, source: Readable, limit: number): Promise<number> {
    let taken = 0;
    const bounded = async function* (src: Readable) {
      for await (const chunk of src as AsyncIterable<Buffer>) {
        taken += chunk.length;
        if (taken > limit) throw new RangeError('chunk longer than its Content-Range');
        yield chunk;
      }
    };
    await pipeline(source, bounded, createWriteStream(this.path(media), { flags: 'a', flush: true }));
    return this.offset(media);
  }

  read(media: string): Readable {
    return createReadStream(this.path(media));
  }

  async discard(media: string): Promise<void> {
    await rm(this.path(media), { force: true });
  }
}
