// Media through signed URLs (docs/protocol.md "Media"): upload and download with the real server
// and SDK over real HTTP, Range / ETag / If-None-Match, size and hash mismatches, tampered and
// expired signatures, resumable chunks, who may download, and media in send and channel.post.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ParleyError } from '../client/index.js';
import { UrlSigner } from '../src/media/signed-urls.js';
import { connect, newDevice, newUser, startTestServer, type TestDevice, type TestServer } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = (n: number, seed = 1) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed) & 0xff;
  return b;
};

async function api(s: TestServer, d: TestDevice, method: string, path: string, body?: unknown) {
  const res = await fetch(s.base + path, {
    method, redirect: 'manual',
    headers: { authorization: `Bearer ${d.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

/** POST /v1/media for `data`; `declared` overrides what is declared. */
async function createMedia(s: TestServer, d: TestDevice, data: Uint8Array, declared: Partial<{ size: number; sha256: string; mime: string; name: string }> = {}) {
  const res = await api(s, d, 'POST', '/v1/media', { mime: 'image/png', size: data.length, sha256: sha(data), name: 'cat.png', ...declared });
  if (res.status !== 201) throw new Error(`POST /v1/media: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json as { media: string; upload: string; expires: number };
}

const put = (url: string, body: Uint8Array, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'PUT', body: body as Uint8Array<ArrayBuffer>, headers });

/** The signed download URL GET /v1/media/:id redirects to. */
async function downloadUrl(s: TestServer, d: TestDevice, media: string): Promise<string> {
  const res = await api(s, d, 'GET', `/v1/media/${encodeURIComponent(media)}`);
  if (res.status !== 302) throw new Error(`GET /v1/media: ${res.status}`);
  return res.headers.get('location')!;
}

/** The default-config server of every subtest but the S3 one: each makes its own users and content. */
const shared = sharedServer(t);

async function setup() {
  const s = await shared();
  const ann = await newDevice(s, await newUser(s, 'ann'));
  const bob = await newDevice(s, await newUser(s, 'bob'));
  return { s, ann, bob };
}

t.test('upload and download round trip through the SDK, in resumable chunks, with progress', async (t) => {
  const { s, ann } = await setup();
  const c = await connect(t, s, ann);
  const data = bytes(300_000);
  const progress: number[] = [];
  const media = await c.upload(data, { mime: 'application/octet-stream', name: 'blob.bin', chunkBytes: 64 * 1024, onProgress: (sent) => progress.push(sent) });
  t.same(progress, [65536, 131072, 196608, 262144, 300000], 'one progress call per chunk');
  const got = await c.download(media);
  t.equal(got.mime, 'application/octet-stream');
  t.ok(Buffer.from(got.data).equals(Buffer.from(data)), 'the same bytes come back');
  // Node's own file upload: hashed as a stream, sent chunk by chunk.
  const file = join(s.dataDir, 'upload-me.bin');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(file, data.subarray(0, 1000));
  const fromFile = await c.upload({ path: file }, { mime: 'text/plain' });
  t.ok(Buffer.from((await c.download(fromFile)).data).equals(Buffer.from(data.subarray(0, 1000))));
});

t.test('download: Content-Type, Content-Length, ETag, Range (206, 416) and If-None-Match (304)', async (t) => {
  const { s, ann } = await setup();
  const data = bytes(10_000);
  const m = await createMedia(s, ann, data);
  t.equal((await put(m.upload, data)).status, 204);
  const url = await downloadUrl(s, ann, m.media);
  const full = await fetch(url);
  t.equal(full.status, 200);
  t.equal(full.headers.get('content-type'), 'image/png');
  t.equal(full.headers.get('content-length'), '10000');
  t.equal(full.headers.get('etag'), `"${sha(data)}"`);
  t.equal(full.headers.get('accept-ranges'), 'bytes');
  t.ok(Buffer.from(await full.arrayBuffer()).equals(Buffer.from(data)));

  const part = await fetch(url, { headers: { range: 'bytes=100-199' } });
  t.equal(part.status, 206);
  t.equal(part.headers.get('content-range'), 'bytes 100-199/10000');
  t.equal(part.headers.get('content-length'), '100');
  t.ok(Buffer.from(await part.arrayBuffer()).equals(Buffer.from(data.subarray(100, 200))));
  const tail = await fetch(url, { headers: { range: 'bytes=-10' } });
  t.equal(tail.status, 206);
  t.ok(Buffer.from(await tail.arrayBuffer()).equals(Buffer.from(data.subarray(-10))), 'a suffix range');
  const open = await fetch(url, { headers: { range: 'bytes=9990-' } });
  t.equal(open.headers.get('content-range'), 'bytes 9990-9999/10000', 'an open-ended range');
  await open.arrayBuffer();
  const beyond = await fetch(url, { headers: { range: 'bytes=10000-' } });
  t.equal(beyond.status, 416);
  t.equal(beyond.headers.get('content-range'), 'bytes */10000');
  await beyond.arrayBuffer();

  const cached = await fetch(url, { headers: { 'if-none-match': `"${sha(data)}"` } });
  t.equal(cached.status, 304);
  t.equal(cached.headers.get('etag'), `"${sha(data)}"`);
  const changed = await fetch(url, { headers: { 'if-none-match': '"something-else"' } });
  t.equal(changed.status, 200);
  await changed.arrayBuffer();
});

t.test('a size or hash mismatch is 400, leaves the media unusable, and the same URL can be retried', async (t) => {
  const { s, ann, bob } = await setup();
  const c = await connect(t, s, ann);
  const data = bytes(5000);
  const m = await createMedia(s, ann, data);
  const short = await put(m.upload, data.subarray(0, 4999));
  t.equal(short.status, 400, 'too few bytes');
  t.match(await short.json(), { error: 'bad_frame', message: /Content-Length 4999, expected 5000/ });
  const long = await put(m.upload, new Uint8Array([...data, 1]));
  t.equal(long.status, 413, 'a Content-Length above the declared size');
  await long.arrayBuffer();
  const wrong = new Uint8Array(data);
  wrong[0] ^= 0xff;
  const bad = await put(m.upload, wrong);
  t.equal(bad.status, 400, 'the wrong bytes');
  t.match(await bad.json(), { error: 'bad_frame', message: /sha256/ });
  await t.rejects(c.send({ to: bob.user, body: 'look', media: m.media }), { code: 'not_found' }, 'not usable before a good upload');
  t.equal((await api(s, ann, 'GET', `/v1/media/${m.media}`)).status, 404, 'no download either');
  t.equal((await put(m.upload, data)).status, 204, 'the retry on the same URL succeeds');
  t.equal((await api(s, ann, 'GET', `/v1/media/${m.media}`)).status, 302);
  const again = await put(m.upload, data);
  t.equal(again.status, 403, 'the upload URL is used up by the first PUT that succeeded');
  t.match(await again.json(), { error: 'forbidden', message: /used already/ });
});

t.test('tampered and expired signatures are 403; signatures are per method and media', async (t) => {
  const { s, ann } = await setup();
  const data = bytes(100);
  const m = await createMedia(s, ann, data);
  const u = new URL(m.upload);
  const tampered = new URL(u);
  tampered.searchParams.set('sig', u.searchParams.get('sig')!.replace(/^./, (ch) => (ch === 'A' ? 'B' : 'A')));
  t.equal((await put(tampered.href, data)).status, 403, 'another signature');
  const later = new URL(u);
  later.searchParams.set('expires', String(m.expires + 1000));
  t.equal((await put(later.href, data)).status, 403, 'a longer expiry than signed');
  // A correctly signed URL whose time has passed: signed with the server's own key (DATA_DIR/signing-secret).
  const signer = new UrlSigner(Buffer.from(readFileSync(join(s.dataDir, 'signing-secret'), 'utf8').trim()));
  const past = Date.now() - 1;
  const expired = `${s.base}/v1/media/${encodeURIComponent(m.media)}/upload?expires=${past}&sig=${signer.sign('PUT', m.media, past)}`;
  const res = await put(expired, data);
  t.equal(res.status, 403, 'expired');
  t.match(await res.json(), { error: 'forbidden', message: /invalid or expired/ });
  const asDownload = m.upload.replace('/upload?', '/content?');
  t.equal((await fetch(asDownload)).status, 403, 'an upload signature does not sign a download');
  t.equal((await put(m.upload, data)).status, 204, 'the genuine URL still works');
  const url = await downloadUrl(s, ann, m.media);
  const other = await createMedia(s, ann, bytes(100, 2));
  t.equal((await fetch(url.replace(encodeURIComponent(m.media), encodeURIComponent(other.media)))).status, 403, 'a signature names one media');
});

t.test('resumable upload: Content-Range chunks, HEAD reports the offset, a wrong start is 409', async (t) => {
  const { s, ann } = await setup();
  const data = bytes(30_000);
  const m = await createMedia(s, ann, data);
  const head = async () => (await fetch(m.upload, { method: 'HEAD' })).headers.get('upload-offset');
  t.equal(await head(), '0');
  const first = await put(m.upload, data.subarray(0, 10_000), { 'content-range': 'bytes 0-9999/30000' });
  t.equal(first.status, 204);
  t.equal(first.headers.get('upload-offset'), '10000');
  t.equal(await head(), '10000', 'HEAD says where to continue');
  const skip = await put(m.upload, data.subarray(20_000), { 'content-range': 'bytes 20000-29999/30000' });
  t.equal(skip.status, 409, 'a chunk must start at the offset');
  t.equal(skip.headers.get('upload-offset'), '10000');
  await skip.arrayBuffer();
  const badTotal = await put(m.upload, data.subarray(10_000, 20_000), { 'content-range': 'bytes 10000-19999/40000' });
  t.equal(badTotal.status, 400, 'the total must be the declared size');
  await badTotal.arrayBuffer();
  t.equal((await put(m.upload, data.subarray(10_000, 20_000), { 'content-range': 'bytes 10000-19999/30000' })).status, 204);
  const last = await put(m.upload, data.subarray(20_000), { 'content-range': 'bytes 20000-29999/30000' });
  t.equal(last.status, 204);
  t.equal(last.headers.get('upload-offset'), '30000');
  const got = await fetch(await downloadUrl(s, ann, m.media));
  t.ok(Buffer.from(await got.arrayBuffer()).equals(Buffer.from(data)), 'the chunks make the file');
});

t.test('send with media: the receiver gets the media object; foreign, pending and missing ids are not_found', async (t) => {
  const { s, ann, bob } = await setup();
  const carol = await newDevice(s, await newUser(s, 'carol'));
  const a = await connect(t, s, ann);
  const b = await connect(t, s, bob);
  const data = bytes(2000);
  const media = await a.upload(data, { mime: 'image/png', name: 'cat.png' });
  const got = b.next('msg');
  const sent = await a.send({ to: bob.user, body: 'a cat', media });
  const msg = await got;
  t.same(msg.media, { id: media, mime: 'image/png', size: 2000, sha256: sha(data), name: 'cat.png' });
  t.equal(msg.body, 'a cat');
  const page = await a.history({ thread: sent.thread, limit: 1 });
  t.same(page.messages[0].media, msg.media, 'history carries it too');
  t.same((await b.send({ to: ann.user, media: await b.upload(bytes(10), { mime: 'text/plain' }) })).thread, sent.thread, 'media without a body');

  // Who may download: the owner and the thread's members; others 404 as for no media at all.
  t.equal((await api(s, bob, 'GET', `/v1/media/${media}`)).status, 302, 'a member of a thread carrying it');
  const stranger = await api(s, carol, 'GET', `/v1/media/${media}`);
  t.equal(stranger.status, 404, 'not a member');
  t.same(stranger.json, (await api(s, carol, 'GET', '/v1/media/m:doesnotexist')).json, 'the same answer as for a media that does not exist');
  t.equal((await api(s, carol, 'GET', `/v1/media/${media}`)).json.error, 'not_found');
  t.equal((await fetch(`${s.base}/v1/media/${media}`)).status, 401, 'no token');

  const c = await connect(t, s, carol);
  await t.rejects(c.send({ to: bob.user, media }), { code: 'not_found' }, "someone else's media");
  await t.rejects(c.send({ to: bob.user, media: 'm:nosuchmedia' }), { code: 'not_found' }, 'a missing media');
  const pending = await createMedia(s, carol, bytes(10));
  await t.rejects(c.send({ to: bob.user, media: pending.media }), { code: 'not_found' }, 'not uploaded yet');
  await t.rejects(c.send({ to: bob.user, media: { id: media } as never }), { code: 'bad_frame' }, 'an object instead of an id');
});

t.test('channel posts with media: cmsg carries it and any signed-in user may download it', async (t) => {
  const { s, ann, bob } = await setup();
  const a = await connect(t, s, ann);
  const b = await connect(t, s, bob);
  const { channel } = await a.channelCreate({ name: `pics${process.pid}`, title: 'Pics' });
  await b.channelJoin({ channel });
  const data = bytes(1234);
  const media = await a.upload(data, { mime: 'image/jpeg' });
  const got = b.next('cmsg');
  await a.channelPost({ channel, media });
  const cmsg = await got;
  t.same(cmsg.media, { id: media, mime: 'image/jpeg', size: 1234, sha256: sha(data) });
  t.notOk('body' in cmsg, 'no body was posted');
  t.ok(Buffer.from((await b.download(media)).data).equals(Buffer.from(data)), 'a channel reader downloads it');
  await t.rejects(a.channelPost({ channel } as never), { code: 'bad_frame' }, 'neither body nor media');
});

t.test('identical content is stored once', async (t) => {
  const { s, ann, bob } = await setup();
  const data = bytes(4096, 9);
  const a = await connect(t, s, ann);
  const b = await connect(t, s, bob);
  // The server is shared: count only the blobs these two uploads add.
  const dir = join(s.dataDir, 'media');
  const stored = () => (existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : []);
  const before = new Set(stored());
  t.notOk(before.has(sha(data)), 'no other subtest stored this content');
  const m1 = await a.upload(data, { mime: 'image/png' });
  const m2 = await b.upload(data, { mime: 'image/gif' });
  t.not(m1, m2, 'two media');
  const blobs = stored().filter((n) => !before.has(n));
  t.same(blobs, [sha(data)], 'one blob, named by its sha256');
  t.equal((await b.download(m2)).mime, 'image/gif', 'each media keeps its own type');
});

t.test('POST /v1/media validates its body and the size limit', async (t) => {
  const { s, ann } = await setup();
  const tooBig = await api(s, ann, 'POST', '/v1/media', { mime: 'video/mp4', size: 100 * 1024 * 1024 + 1, sha256: 'a'.repeat(64) });
  t.equal(tooBig.status, 413);
  t.match(tooBig.json, { error: 'too_large', message: /larger than 104857600 bytes/ });
  const bad = await api(s, ann, 'POST', '/v1/media', { mime: 'video/mp4', size: 1, sha256: 'xyz' });
  t.equal(bad.status, 400);
  t.match(bad.json, { error: 'bad_frame', message: /sha256/ });
  t.equal((await fetch(`${s.base}/v1/media`, { method: 'POST', body: '{}' })).status, 401);
  t.ok(ParleyError);
});

t.test('with BLOB_STORE=s3 uploads are checked by Parley and downloads go straight to the bucket', async (t) => {
  const { startS3 } = await import('./helpers/s3-server.js');
  const bucket = await startS3(t);
  const s = await startTestServer(t, {
    blobStore: 's3', s3Endpoint: bucket.endpoint, s3Bucket: bucket.bucket, s3AccessKeyId: bucket.accessKeyId,
    s3SecretAccessKey: bucket.secretAccessKey, s3ForcePathStyle: true,
  });
  const ann = await newDevice(s, await newUser(s, 'ann'));
  const a = await connect(t, s, ann);
  const data = bytes(70_000, 3);
  const wrong = await createMedia(s, ann, data);
  t.equal((await put(wrong.upload, bytes(70_000, 4))).status, 400, 'a hash mismatch is refused before anything is stored');
  const media = await a.upload(data, { mime: 'image/webp', name: 'x.webp', chunkBytes: 32 * 1024 });
  const url = await downloadUrl(s, ann, media);
  t.ok(url.startsWith(bucket.endpoint), 'the redirect points at the bucket, not Parley');
  const res = await fetch(url);
  t.equal(res.headers.get('content-type'), 'image/webp');
  t.ok(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(data)));
  t.ok(Buffer.from((await a.download(media)).data).equals(Buffer.from(data)), 'the SDK follows it');
});
