// The BlobStore contract suite run against both implementations: files in a temp directory, and
// an S3 bucket on a real local S3-compatible server (s3rver) that the test starts.
import t from 'tap';
import { join } from 'node:path';
import { FsBlobStore } from '../src/media/fs-blob-store.js';
import { S3BlobStore } from '../src/media/s3-blob-store.js';
import { blobStoreContract } from './helpers/blob-store-contract.js';
import { startS3 } from './helpers/s3-server.js';
import { tempDataDir } from './helpers/server.js';

t.test('fs', async (t) => {
  blobStoreContract(t, async (t) => new FsBlobStore(join(tempDataDir(t), 'media')));
});

t.test('s3', async (t) => {
  blobStoreContract(t, async (t) => {
    const s3 = await startS3(t);
    const store = new S3BlobStore({ ...s3, region: 'us-east-1', forcePathStyle: true });
    t.teardown(() => store.close());
    return store;
  });
});
