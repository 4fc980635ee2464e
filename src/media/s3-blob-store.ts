// Blobs in an S3-compatible bucket (AWS SDK v3). An upload is streamed to a temp key while it is
// counted and hashed, copied to its final key once both match, and the temp key deleted; a reader
// never sees a partial object. Downloads are presigned GET URLs: the bytes bypass Parley.
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BlobDownload, BlobExpectation, BlobStore, ByteRange } from './blob-store.js';
import { HashingCounter } from './hashing-counter.js';

export interface S3BlobStoreOptions {
  endpoint: string; bucket: string; region: string;
  accessKeyId: string; secretAccessKey: string; forcePathStyle: boolean;
}

const BLOBS = 'blobs/';
const SILENT = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const TEMP = 'tmp/';

export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  private readonly s3: S3Client;
  private readonly bucket: string;

  constructor(o: S3BlobStoreOptions) {
    this.bucket = o.bucket;
    this.s3 = new S3Client({
      region: o.region,
      forcePathStyle: o.forcePathStyle,
      // No default CRC trailers (aws-chunked bodies): many S3-compatible servers store them as data.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // The SDK would print a console warning when a streamed upload fails (a client that went away,
      // a hash mismatch we cut short); the failure reaches us as the rejection we handle.
      logger: SILENT,
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      ...(o.accessKeyId ? { credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey } } : {}),
    });
  }

  async put(key: string, source: Readable, expect: BlobExpectation): Promise<void> {
    const final = BLOBS + key;
    if (await this.stat(key)) {
      // Same content already stored: still read and check every byte, so that an uploader cannot
      // claim a hash without having the content.
      await drainChecked(source, expect);
      return;
    }
    const temp = TEMP + randomUUID();
    const counter = new HashingCounter(expect);
    source.on('error', (err) => counter.destroy(err));
    try {
      // ContentLength is what lets the SDK stream a body of known size in one PUT.
      const sent = this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: temp, Body: source.pipe(counter), ContentLength: expect.size }));
      const checked = new Promise<void>((resolve, reject) => {
        counter.on('error', reject);
        counter.on('end', resolve);
      });
      // Both must succeed: the store took every byte, and the bytes were the declared ones.
      await Promise.all([sent.catch((err: unknown) => checked.then(() => Promise.reject(err))), checked]);
      await this.s3.send(new CopyObjectCommand({ Bucket: this.bucket, Key: final, CopySource: `${this.bucket}/${temp}` }));
    } finally {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: temp })).catch(() => undefined);
    }
  }

  adopt(key: string, file: string, expect: BlobExpectation): Promise<void> {
    return this.put(key, createReadStream(file), expect);
  }

  async stat(key: string): Promise<{ size: number } | null> {
    try {
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: BLOBS + key }));
      return { size: head.ContentLength ?? 0 };
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable | null> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: BLOBS + key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }));
      return out.Body as Readable;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: BLOBS + key }));
  }

  presignGet(key: string, d: BlobDownload): Promise<string> {
    const disposition = d.fileName ? `inline; filename*=UTF-8''${encodeURIComponent(d.fileName)}` : undefined;
    return getSignedUrl(
      this.s3,
      new GetObjectCommand({ Bucket: this.bucket, Key: BLOBS + key, ResponseContentType: d.contentType, ...(disposition ? { ResponseContentDisposition: disposition } : {}) }),
      { expiresIn: d.expiresInSeconds },
    );
  }

  async close(): Promise<void> {
    this.s3.destroy();
  }
}

function isMissing(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404);
}

/** Reads a stream to its end through the size and hash check, keeping nothing. */
async function drainChecked(source: Readable, expect: BlobExpectation): Promise<void> {
  const counter = new HashingCounter(expect);
  source.on('error', (err) => counter.destroy(err));
  await new Promise<void>((resolve, reject) => {
    counter.on('error', reject);
    counter.on('end', resolve);
    source.pipe(counter).resume();
  });
}
