// Media collection (docs/protocol.md "Media"): a media that no message carries is deleted once
// older than MEDIA_GRACE, with its blob unless another media has the same content; a carried media
// stays, until retention deletes the last message carrying it. Waits on metrics, never on sleeps.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect, newDevice, newUser, startTestServer, type TestServer } from './helpers/server.js';
import { metric } from './helpers/metrics.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

/** The sum of a metric's series whose labels include `label` (e.g. 'log="mediaRefs"'). */
async function untilMetric(s: TestServer, name: string, atLeast: number, label = '', timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while ((await metric(s.base, name, label)) < atLeast) {
    if (Date.now() > end) throw new Error(`${name} did not reach ${atLeast}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const status = async (s: TestServer, token: string, media: string) =>
  (await fetch(`${s.base}/v1/media/${media}`, { redirect: 'manual', headers: { authorization: `Bearer ${token}` } })).status;

t.test('unattached media are collected after the grace; carried media and shared blobs stay', async (t) => {
  const s = await startTestServer(t, { mediaGraceMs: 1000, retentionSweepMs: 200 });
  const ann = await newDevice(s, await newUser(s, 'ann'));
  const bob = await newDevice(s, await newUser(s, 'bob'));
  const a = await connect(t, s, ann);
  const lonely = bytes(1000, 1);
  const kept = bytes(1000, 2);
  const unused = await a.upload(lonely, { mime: 'image/png' });
  const carried = await a.upload(kept, { mime: 'image/png' });
  const twin = await a.upload(kept, { mime: 'image/png' }); // same content as `carried`, never sent
  await a.send({ to: bob.user, media: carried });
  await untilMetric(s, 'parley_media_collected_total', 2);
  t.equal(await status(s, ann.token, unused), 404, 'the unattached media is gone');
  t.equal(await status(s, ann.token, twin), 404, 'so is its unattached twin');
  t.notOk(existsSync(join(s.dataDir, 'media', sha(lonely))), 'with its blob');
  t.ok(existsSync(join(s.dataDir, 'media', sha(kept))), 'the blob the carried media shares stays');
  t.equal(await status(s, bob.token, carried), 302, 'a carried media stays downloadable');
  t.same((await a.download(carried)).data.length, 1000);
  t.equal(await metric(s.base, 'parley_media_collected_total'), 2, 'nothing else was collected');
});

t.test('a media goes when retention deletes the last message carrying it', async (t) => {
  const s = await startTestServer(t, { mediaGraceMs: 1000, retentionMs: 2000, retentionSweepMs: 200 });
  const ann = await newDevice(s, await newUser(s, 'ann'));
  const bob = await newDevice(s, await newUser(s, 'bob'));
  const a = await connect(t, s, ann);
  const data = bytes(2000, 3);
  const media = await a.upload(data, { mime: 'image/png' });
  await a.send({ to: bob.user, body: 'pic', media });
  await untilMetric(s, 'parley_retention_swept_total', 1, 'log="mediaRefs"');
  await untilMetric(s, 'parley_media_collected_total', 1);
  t.equal(await status(s, bob.token, media), 404, 'gone for the member');
  t.equal(await status(s, ann.token, media), 404, 'and for the owner');
  t.notOk(existsSync(join(s.dataDir, 'media', sha(data))), 'its blob is deleted');
});
