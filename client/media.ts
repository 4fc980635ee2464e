// Media uploads and downloads over HTTP (docs/protocol.md "Media"; docs/sdk.md "Media"). Works in
// browsers (Blob or Uint8Array, sha256 by WebCrypto) and in Node (also `{path}`: hashed and sent
// from the file in chunks, never read whole). Uploads go in Content-Range chunks: a chunk that
// fails is retried from the offset the server reports, so a bad network costs one chunk, not the file.
import { ErrorCode } from '../protocol/codes.js';
import { ParleyError } from './errors.js';
import { apiCall, errorFromResponse, joinUrl } from './http.js';
import type { MediaUpload } from './types.js';

export type UploadData = Uint8Array | Blob | { path: string };

export interface UploadOptions {
  mime: string;
  name?: string;
  /** Called after each chunk with the bytes the server has and the total. */
  onProgress?: (sent: number, total: number) => void;
  /** Bytes per PUT (default 8 MiB). */
  chunkBytes?: number;
  /** Tries per chunk before giving up (default 5), with a growing pause between them. */
  retries?: number;
}

export interface Downloaded { data: Uint8Array; mime: string }

const DEFAULT_CHUNK = 8 * 1024 * 1024;

/** Uploads `data` and resolves with its media id, ready to attach to `send` or `channel.post`. */
export async function uploadMedia(baseUrl: string, token: string, data: UploadData, opts: UploadOptions): Promise<string> {
  const source = await openSource(data);
  const body: Record<string, unknown> = { mime: opts.mime, size: source.size, sha256: await source.sha256() };
  if (opts.name !== undefined) body.name = opts.name;
  const created: MediaUpload = await apiCall(baseUrl, 'POST', '/v1/media', { token, body });
  const chunk = Math.max(1, opts.chunkBytes ?? DEFAULT_CHUNK);
  const tries = Math.max(1, opts.retries ?? 5);
  let offset = 0;
  let failures = 0;
  do {
    const end = Math.min(offset + chunk, source.size);
    try {
      offset = await putChunk(created.upload, await source.slice(offset, end), offset, end, source.size);
      failures = 0;
      opts.onProgress?.(offset, source.size);
    } catch (err) {
      // A refused upload (hash or size mismatch, bad signature) will not get better by retrying.
      if (err instanceof ParleyError && err.status !== undefined && err.status < 500 && err.status !== 409) throw err;
      if (++failures >= tries) throw err;
      await new Promise((r) => setTimeout(r, 200 * 2 ** failures));
      offset = await uploadOffset(created.upload);
    }
  } while (offset < source.size);
  return created.media;
}

/** Fetches a media's bytes (following the redirect to its signed URL). */
export async function downloadMedia(baseUrl: string, token: string, media: string): Promise<Downloaded> {
  let res: Response;
  try {
    res = await fetch(joinUrl(baseUrl, `/v1/media/${encodeURIComponent(media)}`), { headers: { authorization: `Bearer ${token}` } });
  } catch (err) {
    throw new ParleyError(ErrorCode.unavailable, `download ${media}: ${(err as Error)?.message ?? err}`);
  }
  if (!res.ok) throw errorFromResponse(res, await res.text());
  return { data: new Uint8Array(await res.arrayBuffer()), mime: res.headers.get('content-type') ?? 'application/octet-stream' };
}

async function putChunk(url: string, bytes: Uint8Array, start: number, end: number, total: number): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (total > 0) headers['content-range'] = `bytes ${start}-${end - 1}/${total}`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'PUT', headers, body: bytes as Uint8Array<ArrayBuffer> });
  } catch (err) {
    throw new ParleyError(ErrorCode.unavailable, `upload: ${(err as Error)?.message ?? err}`);
  }
  const text = await res.text();
  if (!res.ok) throw errorFromResponse(res, text);
  return Number(res.headers.get('upload-offset') ?? end);
}

async function uploadOffset(url: string): Promise<number> {
  const res = await fetch(url, { method: 'HEAD' });
  if (!res.ok) throw errorFromResponse(res, '');
  return Number(res.headers.get('upload-offset') ?? 0);
}

interface Source { size: number; sha256(): Promise<string>; slice(start: number, end: number): Promise<Uint8Array> }

async function openSource(data: UploadData): Promise<Source> {
  if (data instanceof Uint8Array) {
    return { size: data.byteLength, sha256: () => digestHex(data), slice: async (s, e) => data.subarray(s, e) };
  }
  if (typeof Blob !== 'undefined' && data instanceof Blob) {
    return { size: data.size, sha256: async () => digestHex(new Uint8Array(await data.arrayBuffer())), slice: async (s, e) => new Uint8Array(await data.slice(s, e).arrayBuffer()) };
  }
  return fileSource((data as { path: string }).path);
}

async function digestHex(bytes: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes as BufferSource);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Node built-ins by a specifier computed at run time: bundlers for browsers (esbuild, Vite) leave
 * such an import alone instead of failing on it, and a browser never reaches it (`{path}` is Node's).
 */
function nodeBuiltin<T>(name: string): Promise<T> {
  const specifier = `node:${name}`;
  return import(/* @vite-ignore */ specifier) as Promise<T>;
}

/** Node only: a file hashed as a stream and read one chunk at a time. */
async function fileSource(path: string): Promise<Source> {
  const fs = await nodeBuiltin<typeof import('node:fs')>('fs');
  const { createHash } = await nodeBuiltin<typeof import('node:crypto')>('crypto');
  const size = (await fs.promises.stat(path)).size;
  return {
    size,
    sha256: async () => {
      const hash = createHash('sha256');
      for await (const chunk of fs.createReadStream(path)) hash.update(chunk as Uint8Array);
      return hash.digest('hex');
    },
    slice: async (start, end) => {
      const handle = await fs.promises.open(path, 'r');
      try {
        const buf = new Uint8Array(end - start);
        let at = 0;
        while (at < buf.length) {
          const { bytesRead } = await handle.read(buf, at, buf.length - at, start + at);
          if (bytesRead === 0) throw new ParleyError(ErrorCode.bad_frame, `${path} shrank while uploading`);
          at += bytesRead;
        }
        return buf;
      } finally {
        await handle.close();
      }
    },
  };
}
