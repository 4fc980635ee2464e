// The BlobStore contract (src/media/blob-store.ts) as one suite every implementation runs: checked
// streamed puts (size and sha256), no partial blob after a mismatch, identical content kept once,
// ranged gets, stat, delete, presigned downloads where the store has them.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Test } from 'tap';
import { BlobMismatch, type BlobStore } from '../../src/media/blob-store.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const chunks = (b: Buffer, size = 64 * 1024) => Readable.from((function* () {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
})());
const bytesOf = async (r: Readable | null) => {
  if (!r) return null;
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

export function blobStoreContract(t: Test, open: (t: Test) => Promise<BlobStore>): void {
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
  const key = sha(data);

  t.test('a checked put streams in, then stat, get and ranged get return its bytes', async (t) => {
    const store = await open(t);
    await store.put(key, chunks(data), { size: data.length, sha256: key });
    t.same(await store.stat(key), { size: data.length });
    t.ok((await bytesOf(await store.get(key)))!.equals(data), 'the whole blob');
    t.ok((await bytesOf(await store.get(key, { start: 10, end: 19 })))!.equals(data.subarray(10, 20)), 'bytes 10..19 inclusive');
    t.ok((await bytesOf(await store.get(key, { start: data.length - 1, end: data.length - 1 })))!.equals(data.subarray(-1)), 'the last byte');
  });

  t.test('too many bytes, too few, or another hash: BlobMismatch and nothing stored', async (t) => {
    const store = await open(t);
    await t.rejects(store.put(key, chunks(Buffer.concat([data, Buffer.from('x')])), { size: data.length, sha256: key }), BlobMismatch);
    t.equal(await store.stat(key), null, 'no blob after too many bytes');
    await t.rejects(store.put(key, chunks(data.subarray(1)), { size: data.length, sha256: key }), BlobMismatch);
    t.equal(await store.stat(key), null, 'no blob after too few bytes');
    const other = Buffer.from(data);
    other[5] ^= 1;
    await t.rejects(store.put(key, chunks(other), { size: data.length, sha256: key }), BlobMismatch);
    t.equal(await store.stat(key), null, 'no blob after a hash mismatch');
    t.equal(await store.get(key), null, 'get of a missing blob is null');
  });

  t.test('a put of an existing key checks the bytes and keeps the stored blob', async (t) => {
    const store = await open(t);
    await store.put(key, chunks(data), { size: data.length, sha256: key });
    const forged = Buffer.alloc(data.length, 1);
    await t.rejects(store.put(key, chunks(forged), { size: data.length, sha256: key }), BlobMismatch, 'claiming the hash without the bytes fails');
    await store.put(key, chunks(data), { size: data.length, sha256: key });
    t.ok((await bytesOf(await store.get(key)))!.equals(data), 'still the first bytes');
  });

  t.test('an empty blob, a source that fails midway, delete', async (t) => {
    const store = await open(t);
    const empty = sha(Buffer.alloc(0));
    await store.put(empty, Readable.from([]), { size: 0, sha256: empty });
    t.same(await store.stat(empty), { size: 0 });
    const failing = new Readable({ read() { this.push(data.subarray(0, 1000)); this.destroy(new Error('client went away')); } });
    await t.rejects(store.put(key, failing, { size: data.length, sha256: key }));
    t.equal(await store.stat(key), null, 'nothing stored from a broken source');
    await store.delete(empty);
    t.equal(await store.stat(empty), null);
    await store.delete(empty); // missing: not an error
  });

  t.test('adopt stores a checked local file and leaves the file to the caller', async (t) => {
    const store = await open(t);
    const dir = mkdtempSync(join(tmpdir(), 'parley-adopt-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'part');
    writeFileSync(file, data);
    await store.adopt(key, file, { size: data.length, sha256: key });
    t.ok((await bytesOf(await store.get(key)))!.equals(data));
    t.ok(existsSync(file), 'the file is still there');
    await store.adopt(key, file, { size: data.length, sha256: key }); // again: the blob exists, still fine
    t.same(await store.stat(key), { size: data.length });
  });

  t.test('presignGet: a URL that serves the bytes, or null (Parley serves them)', async (t) => {
    const store = await open(t);
    await store.put(key, chunks(data), { size: data.length, sha256: key });
    const url = await store.presignGet(key, { contentType: 'image/png', fileName: 'a b.png', expiresInSeconds: 60 });
    if (url === null) return t.equal(store.kind, 'fs', 'only the fs store has no presigned URLs');
    const res = await fetch(url);
    t.equal(res.status, 200);
    t.equal(res.headers.get('content-type'), 'image/png');
    t.ok(Buffer.from(await res.arrayBuffer()).equals(data));
    const ranged = await fetch(url, { headers: { range: 'bytes=0-9' } });
    t.equal(ranged.status, 206, 'the store serves ranges itself');
    t.ok(Buffer.from(await ranged.arrayBuffer()).equals(data.subarray(0, 10)));
  });
}
