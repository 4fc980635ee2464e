// Media over HTTP (docs/protocol.md "Media"): create, upload (whole or resumable by Content-Range,
// with HEAD for the offset), the authorized redirect, and the signed download with Range, ETag
// and If-None-Match. Bodies stream in and out with bounded memory.
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { isId } from '../../protocol/ids.js';
import { BlobMismatch } from '../media/blob-store.js';
import type { MediaRecord } from '../../storage/env.js';
import type { MediaLibrary } from '../media/media-library.js';
import type { UploadStaging } from '../media/upload-staging.js';
import type { Metrics } from '../metrics.js';
import { streamBody } from './body-writer.js';
import { decodedSegment, type Reply } from './http.js';
import { requestStream } from './request-stream.js';

export interface MediaRequest {
  param: string; query: string; host: string; contentLength: string;
  contentRange: string; range: string; ifNoneMatch: string;
}

export interface MediaRouteKit<R extends MediaRequest> {
  on(method: 'GET' | 'POST' | 'PUT' | 'HEAD', pattern: string, handler: (reply: Reply, req: R) => Promise<void> | void): void;
  /** async: an application JWT is verified (start a body read before awaiting it) */
  session(req: R): Promise<{ user: string }>;
  body(reply: Reply, req: R): Promise<{ mime: string; size: number; sha256: string; name?: string }>;
}

export interface MediaRouteDeps { media: MediaLibrary; staging: UploadStaging; publicUrl: string; metrics: Metrics; log: Logger }

export function mountMediaRoutes<R extends MediaRequest>(kit: MediaRouteKit<R>, deps: MediaRouteDeps): void {
  const { media, staging, metrics } = deps;
  /** Uploads running now, by media: a second PUT to the same media waits its turn (409). */
  const uploading = new Set<string>();
  const base = (req: R) => deps.publicUrl || `http://${req.host || '127.0.0.1'}`;
  const mediaId = (req: R) => {
    const id = decodedSegment(req.param);
    if (!isId(id)) throw new ProtocolError(ErrorCode.not_found, 'no such media');
    return id;
  };

  kit.on('POST', '/v1/media', async (reply, req) => {
    const [s, b] = await Promise.all([kit.session(req), kit.body(reply, req)]);
    const answer = await media.create(s.user, b, base(req));
    reply.json(201, answer);
  });

  const signed = (req: R, method: 'PUT' | 'GET') => {
    const q = new URLSearchParams(req.query);
    return media.authorize(method, mediaId(req), q.get('expires') ?? '', q.get('sig') ?? '');
  };

  kit.on('HEAD', '/v1/media/:media/upload', async (reply, req) => {
    const record = signed(req, 'PUT');
    const offset = record.state === 'ready' ? record.size : await staging.offset(record.media);
    reply.empty(204, { 'Upload-Offset': String(offset), 'Upload-Length': String(record.size) });
  });

  kit.on('PUT', '/v1/media/:media/upload', async (reply, req) => {
    const record = signed(req, 'PUT');
    if (record.state === 'ready') throw new ProtocolError(ErrorCode.forbidden, 'this upload URL was used already');
    const range = req.contentRange === '' ? null : parseContentRange(req.contentRange);
    if (range === undefined) throw new ProtocolError(ErrorCode.bad_frame, 'Content-Range must be "bytes START-END/TOTAL"');
    if (range && range.total !== record.size) throw new ProtocolError(ErrorCode.bad_frame, `Content-Range total must be the declared size ${record.size}`);
    const length = req.contentLength === '' ? null : Number(req.contentLength);
    const expected = range ? range.end - range.start + 1 : record.size;
    if (length !== null && length !== expected) {
      throw new ProtocolError(length > record.size ? ErrorCode.too_large : ErrorCode.bad_frame, `Content-Length ${length}, expected ${expected} bytes`);
    }
    if (uploading.has(record.media)) throw new ProtocolError(ErrorCode.conflict, 'an upload of this media is in progress');
    // uWS delivers the body only to a handler attached before this callback returns: attach it
    // now, before any await (the stream pauses the socket until it is read).
    const source = requestStream(reply);
    uploading.add(record.media);
    try {
      if (range === null) {
        // A whole upload: straight into the store, checked as it arrives.
        await staging.discard(record.media);
        await receive(reply, record, source);
        return;
      }
      const offset = await staging.offset(record.media);
      if (range.start !== offset) {
        source.destroy();
        return reply.json(409, { error: ErrorCode.conflict, message: `the upload continues at byte ${offset}` }, { 'Upload-Offset': String(offset) });
      }
      const now = await staging.append(record.media, source, expected).catch((err: unknown) => {
        throw reply.aborted ? err : new ProtocolError(ErrorCode.bad_frame, 'the chunk is longer than its Content-Range');
      });
      metrics.counts.mediaBytesIn += now - offset;
      if (now < record.size) return reply.empty(204, { 'Upload-Offset': String(now) });
      try {
        const digest = await staging.digest(record.media);
        await checked(reply, record, () => media.receiveStaged(record, staging.path(record.media), now, digest));
      } finally {
        await staging.discard(record.media); // matched or not: a mismatch starts again from 0
      }
    } finally {
      uploading.delete(record.media);
    }
  });

  const receive = (reply: Reply, record: MediaRecord, source: Readable) => {
    source.on('data', (chunk: Buffer) => (metrics.counts.mediaBytesIn += chunk.length));
    return checked(reply, record, () => media.receive(record, source));
  };

  /** Runs a checked store of the bytes; a mismatch is 400 (retry on the same URL), success 204. */
  const checked = async (reply: Reply, record: MediaRecord, store: () => Promise<void>) => {
    try {
      await store();
    } catch (err) {
      if (err instanceof BlobMismatch) {
        metrics.counts.mediaUploadsRejected++;
        throw new ProtocolError(ErrorCode.bad_frame, `${err.message}; the upload may be retried on the same URL`);
      }
      throw err;
    }
    metrics.counts.mediaUploads++;
    reply.empty(204, { 'Upload-Offset': String(record.size) });
  };

  kit.on('GET', '/v1/media/:media', async (reply, req) => {
    const s = await kit.session(req);
    const record = media.readable(s.user, mediaId(req));
    if (!record) throw new ProtocolError(ErrorCode.not_found, 'no such media');
    reply.empty(302, { Location: await media.downloadUrl(base(req), record), 'Cache-Control': 'no-store' });
  });

  kit.on('GET', '/v1/media/:media/content', async (reply, req) => {
    const record = signed(req, 'GET');
    if (record.state !== 'ready') throw new ProtocolError(ErrorCode.not_found, 'no such media');
    const etag = `"${record.sha256}"`;
    const common: Record<string, string> = {
      ETag: etag, 'Accept-Ranges': 'bytes', 'Cache-Control': 'private, max-age=300', 'X-Content-Type-Options': 'nosniff',
    };
    if (record.name !== undefined) common['Content-Disposition'] = `inline; filename*=UTF-8''${encodeURIComponent(record.name)}`;
    if (req.ifNoneMatch !== '' && req.ifNoneMatch.split(',').some((t) => t.trim() === etag || t.trim() === '*')) return reply.empty(304, common);
    const range = req.range === '' ? null : parseRange(req.range, record.size);
    if (range === 'unsatisfiable') return reply.json(416, { error: ErrorCode.bad_frame, message: 'range not satisfiable' }, { 'Content-Range': `bytes */${record.size}` });
    const part = range ?? { start: 0, end: record.size - 1 };
    const body = record.size === 0 ? null : await media.blobs.get(record.sha256, part);
    if (body === null && record.size > 0) throw new ProtocolError(ErrorCode.not_found, 'no such media');
    const headers: Record<string, string> = { ...common, 'Content-Type': record.mime };
    if (range) headers['Content-Range'] = `bytes ${part.start}-${part.end}/${record.size}`;
    await streamBody(reply, range ? 206 : 200, headers, body ?? Readable.from([]), record.size === 0 ? 0 : part.end - part.start + 1, (n) => (metrics.counts.mediaBytesOut += n));
  });
}

/** `bytes START-END/TOTAL`; undefined when malformed. */
function parseContentRange(raw: string): { start: number; end: number; total: number } | undefined {
  const m = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/.exec(raw.trim());
  if (!m) return undefined;
  const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return start <= end && end < total ? { start, end, total } : undefined;
}

/**
 * One `Range: bytes=` range (`a-b`, `a-`, `-n`), clamped to the size; null means "send it all"
 * (several ranges, or a unit other than bytes: allowed by RFC 9110); 'unsatisfiable' → 416.
 */
function parseRange(raw: string, size: number): { start: number; end: number } | null | 'unsatisfiable' {
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(raw.trim());
  if (!m) return null;
  const [a, b] = [m[1], m[2]];
  if (a === '' && b === '') return null;
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || (b !== '' && Number(b) < start)) return 'unsatisfiable';
  return { start, end };
}
