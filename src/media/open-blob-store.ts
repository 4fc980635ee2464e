// The blob store the config names (BLOB_STORE): fs under DATA_DIR/media, or an S3 bucket.
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

export function openBlobStore(config: Config): BlobStore {
  if (config.blobStore === 's3') {
    return new S3BlobStore({
      endpoint: config.s3Endpoint, bucket: config.s3Bucket, region: config.s3Region,
      accessKeyId: config.s3AccessKeyId, secretAccessKey: config.s3SecretAccessKey, forcePathStyle: config.s3ForcePathStyle,
    });
  }
  return new FsBlobStore(join(config.dataDir, 'media'));
}
