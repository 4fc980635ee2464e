// A real local S3-compatible server (s3rver) on a free port with a temp directory and one bucket,
// torn down with the test.
import S3rver from 's3rver';
import { tempDataDir } from './server.js';

interface Teardown { teardown(fn: () => unknown): void }

export interface LocalS3 { endpoint: string; bucket: string; accessKeyId: string; secretAccessKey: string }

export async function startS3(t: Teardown, bucket = 'parley-media'): Promise<LocalS3> {
  const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: tempDataDir(t), configureBuckets: [{ name: bucket, configs: [] }] });
  const { port } = (await s3.run()) as { port: number };
  t.teardown(() => s3.close());
  // s3rver's fixed credentials (it checks signatures made with them).
  return { endpoint: `http://127.0.0.1:${port}`, bucket, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
}
