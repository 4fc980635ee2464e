// Resumable uploads (docs/protocol.md "Media"): the chunks of a `Content-Range` upload are
// appended to a part file on local disk, whatever the blob store, until the declared size is
// reached. Each chunk is hashed as it arrives (the running SHA-256 is kept while the upload is
// open), so the completed file is checked without reading it again; after a restart, or for an
// upload idle long enough to drop out of the table, the hash is recomputed from the file once.
// `HEAD` reports the offset received so far, so a client on a bad network resends only what is missing.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Open uploads whose running hash is kept (a hash state is ~200 bytes). */
const MAX_RUNNING_HASHES = 10_000;

export class UploadStaging {
  /** media → the hash of the part file's first `offset` bytes */
  private readonly running = new Map<string, { hash: Hash; offset: number }>();

  constructor(private readonly dir: string) {
    // Parts survive a restart: whatever reached the file are bytes the client sent, in order,
    // so HEAD's offset is a sound place to resume from.
    mkdirSync(dir, { recursive: true });
  }

  /** The part file of a media (its bytes so far). */
  path(media: string): string {
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
    const before = await this.offset(media);
    let state = this.running.get(media);
    if (!state || state.offset !== before) state = { hash: await this.hashOf(media), offset: before };
    this.running.delete(media); // re-inserted below: the Map's order is least recently used first
    let taken = 0;
    const hash = state.hash;
    const bounded = async function* (src: Readable) {
      for await (const chunk of src as AsyncIterable<Buffer>) {
        taken += chunk.length;
        if (taken > limit) throw new RangeError('chunk longer than its Content-Range');
        hash.update(chunk);
        yield chunk;
      }
    };
    // On failure the running state is dropped (not re-inserted): the next chunk rehashes the file.
    await pipeline(source, bounded, createWriteStream(this.path(media), { flags: 'a', flush: true }));
    const now = await this.offset(media);
    if (now === before + taken) {
      this.running.set(media, { hash, offset: now });
      if (this.running.size > MAX_RUNNING_HASHES) this.running.delete(this.running.keys().next().value!);
    }
    return now;
  }

  /** The sha256 (hex) of everything staged, once the upload is complete. */
  async digest(media: string): Promise<string> {
    const state = this.running.get(media);
    const size = await this.offset(media);
    if (state && state.offset === size) return state.hash.copy().digest('hex');
    return (await this.hashOf(media)).digest('hex');
  }

  private async hashOf(media: string): Promise<Hash> {
    const hash = createHash('sha256');
    try {
      for await (const chunk of createReadStream(this.path(media))) hash.update(chunk as Buffer);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return hash;
  }

  async discard(media: string): Promise<void> {
    this.running.delete(media);
    await rm(this.path(media), { force: true });
  }
}
