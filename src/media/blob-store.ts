// Where media bytes live. One interface, two implementations (fs-blob-store.ts, s3-blob-store.ts),
// one contract suite run against both (test/blob-store-contract.test.ts).
//
// The contract:
// - Blobs are immutable and named by the caller (Parley names them by their sha256, so identical
//   content is stored once). `put` of a key that exists leaves the existing blob as it is.
// - `put` streams: it never holds the whole blob in memory. It hashes and counts the bytes as they
//   arrive and makes the blob visible only when both match `expect`; otherwise it rejects with
//   BlobMismatch and nothing is stored under `key` (no partial blob is ever readable).
// - `adopt` stores a local file whose size and sha256 the caller has already checked, as cheaply
//   as the store can (fs: a hard link, no copy); the file stays where it is for the caller to remove.
// - `get` returns the bytes `[start, end]` (inclusive, clamped by the caller to the size) as a
//   stream, or null when the key does not exist. `stat` gives the size, or null.
// - `delete` of a missing key is not an error.
// - `presignGet` returns a URL that serves the blob for `expiresInSeconds` without Parley in the
//   path, or null when the store cannot (then Parley serves the bytes itself).
import type { Readable } from 'node:stream';

export interface BlobExpectation { size: number; sha256: string }
export interface ByteRange { start: number; end: number }
export interface BlobDownload { contentType: string; fileName?: string; expiresInSeconds: number }

export interface BlobStore {
  readonly kind: 'fs' | 's3';
  put(key: string, source: Readable, expect: BlobExpectation): Promise<void>;
  adopt(key: string, file: string, expect: BlobExpectation): Promise<void>;
  stat(key: string): Promise<{ size: number } | null>;
  get(key: string, range?: ByteRange): Promise<Readable | null>;
  delete(key: string): Promise<void>;
  presignGet(key: string, download: BlobDownload): Promise<string | null>;
  close(): Promise<void>;
}

/** The bytes did not match what the uploader declared: too many, too few, or another hash. */
export class BlobMismatch extends Error {
  override name = 'BlobMismatch';
}
