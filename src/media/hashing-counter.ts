// A pass-through stream that counts and hashes what flows through it and refuses to pass more
// than the expected size: what both blob stores use to check an upload as it arrives.
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BlobMismatch, type BlobExpectation } from './blob-store.js';

export class HashingCounter extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;

  constructor(private readonly expect: BlobExpectation) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.expect.size) return done(new BlobMismatch(`more than the declared ${this.expect.size} bytes`));
    this.hash.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.bytes !== this.expect.size) return done(new BlobMismatch(`${this.bytes} bytes, declared ${this.expect.size}`));
    const got = this.hash.digest('hex');
    if (got !== this.expect.sha256) return done(new BlobMismatch('the bytes do not match the declared sha256'));
    done();
  }
}
