// Media throughput through Parley with the fs blob store (issue 10): a file of SIZE_MIB (default
// 1024) is uploaded in streamed PUTs of up to 256 MiB each (Content-Range chunks: uWS takes at most
// 999,999,999 bytes in one request body), then again by the SDK in its 8 MiB chunks, and
// downloaded through the signed URL; reports MiB/s of each and the server's peak RSS while it ran
// (sampled every 50 ms: flat when everything streams). Server and client share this machine.
//
//   npm run build && node dist/loadtest/media-transfer.js [--size-mib 1024] [--durability fsync]
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { login, register, uploadMedia } from '../client/index.js';
import { Abort, killEverythingSync } from './bench/children.js';
import { memKiB, round } from './bench/proc.js';
import { startServer, stopServer } from './bench/server.js';

const { values } = parseArgs({ options: { 'size-mib': { type: 'string', default: '1024' }, durability: { type: 'string', default: 'fsync' } } });
const sizeMiB = Number(values['size-mib']);
const size = sizeMiB * 1024 * 1024;
const MiB = 1024 * 1024;
const PART = 256 * MiB;

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'parley-media-'));
  const file = join(work, 'file.bin');
  // Pseudo-random content (xorshift), so nothing along the way gets it cheaper than real media.
  let x = 0x9e3779b9;
  const block = Buffer.alloc(MiB);
  await pipeline(Readable.from((function* () {
    for (let i = 0; i < sizeMiB; i++) {
      for (let j = 0; j < MiB; j += 4) {
        x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
        block.writeUInt32LE(x >>> 0, j);
      }
      yield Buffer.from(block);
    }
  })()), createWriteStream(file));
  const hash = createHash('sha256');
  for await (const c of createReadStream(file)) hash.update(c as Buffer);
  const sha256 = hash.digest('hex');

  process.env.MEDIA_MAX_BYTES = String(size);
  const abort = new Abort();
  const server = await startServer('parley', { durability: values.durability as 'fsync' | 'relaxed' }, abort);
  let peakKiB = 0;
  let baseKiB = memKiB(server.pid).rss;
  const sampler = setInterval(() => (peakKiB = Math.max(peakKiB, memKiB(server.pid).rss || 0)), 50);
  try {
    await register(server.base, { username: 'media_bench', password: 'correct horse battery' });
    const { token } = await login(server.base, { username: 'media_bench', password: 'correct horse battery', device: 'bench' });
    baseKiB = memKiB(server.pid).rss;
    peakKiB = baseKiB;

    // 1. Streamed PUTs straight from the file, 256 MiB each.
    const created = await (await fetch(`${server.base}/v1/media`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ mime: 'application/octet-stream', size, sha256 }),
    })).json() as { media: string; upload: string };
    let t0 = performance.now();
    for (let start = 0; start < size; start += PART) {
      const end = Math.min(size, start + PART) - 1;
      const put = await fetch(created.upload, {
        method: 'PUT', body: Readable.toWeb(createReadStream(file, { start, end, highWaterMark: MiB })) as ReadableStream, duplex: 'half',
        headers: { 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${size}` },
      } as RequestInit);
      if (put.status !== 204) throw new Error(`PUT ${put.status} ${await put.text()}`);
    }
    const putS = (performance.now() - t0) / 1000;
    const putPeak = peakKiB;

    // 2. The SDK: hash + 8 MiB Content-Range chunks (a second media with the same content).
    t0 = performance.now();
    const media2 = await uploadMedia(server.base, token, { path: file }, { mime: 'application/octet-stream' });
    const sdkS = (performance.now() - t0) / 1000;

    // 3. Download through Parley's signed URL.
    const redirect = await fetch(`${server.base}/v1/media/${encodeURIComponent(created.media)}`, { redirect: 'manual', headers: { authorization: `Bearer ${token}` } });
    const url = redirect.headers.get('location')!;
    t0 = performance.now();
    const res = await fetch(url);
    const check = createHash('sha256');
    let got = 0;
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      got += c.length;
      check.update(c);
    }
    const getS = (performance.now() - t0) / 1000;
    if (got !== size || check.digest('hex') !== sha256) throw new Error(`download: ${got} bytes, hash ${got === size ? 'differs' : '-'}`);
    clearInterval(sampler);

    const blobs = statSync(join(server.dataDir, 'media', sha256)).size;
    const rows = [
      ['256 MiB streamed PUTs (checked)', `${round(sizeMiB / putS)} MiB/s`, `${round(putS, 2)} s`],
      ['SDK upload (sha256 + 8 MiB chunks)', `${round(sizeMiB / sdkS)} MiB/s`, `${round(sdkS, 2)} s`],
      ['download (signed URL)', `${round(sizeMiB / getS)} MiB/s`, `${round(getS, 2)} s`],
    ];
    console.log(`media transfer: ${sizeMiB} MiB file, fs blob store, DURABILITY=${values.durability}, server and client on one 2-core machine`);
    for (const r of rows) console.log(`  ${r[0].padEnd(38)} ${r[1].padStart(14)} ${r[2].padStart(10)}`);
    console.log(`  server RSS: ${round(baseKiB / 1024)} MiB before, peak ${round(putPeak / 1024)} MiB during the 256 MiB PUTs, peak ${round(peakKiB / 1024)} MiB overall`);
    console.log(`  one blob stored for both uploads: ${blobs === size ? 'yes' : 'no'} (media ${created.media}, ${media2})`);
  } finally {
    clearInterval(sampler);
    await stopServer(server);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  killEverythingSync();
  process.exit(1);
});
