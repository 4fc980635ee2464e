// Media records and their lifecycle (docs/protocol.md "Media"): created pending by POST /v1/media,
// made ready by the first upload whose bytes match the declared size and sha256, attached to
// messages and posts by id, readable by their owner and by whoever may read a message carrying
// them. Bytes live in a BlobStore under their sha256, so identical content is stored once.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import type { MediaObject, MediaRecord, StorageEnv } from '../../storage/env.js';

export type { MediaObject };
import { BlobMismatch, type BlobStore } from './blob-store.js';
import type { SignedMethod, UrlSigner } from './signed-urls.js';


export interface NewMedia { mime: string; size: number; sha256: string; name?: string }

/** How long an upload URL and a download URL stay valid. */
export const UPLOAD_URL_SECONDS = 24 * 3600;
export const DOWNLOAD_URL_SECONDS = 5 * 60;

export const newMediaId = (): string => `m:${randomBytes(15).toString('base64url')}`;

export class MediaLibrary {
  constructor(
    private readonly storage: StorageEnv,
    readonly blobs: BlobStore,
    private readonly signer: UrlSigner,
    private readonly maxBytes: number,
  ) {}

  /** A pending media and the signed URL its bytes go to. */
  async create(owner: string, m: NewMedia, base: string): Promise<{ media: string; upload: string; expires: number }> {
    if (m.size > this.maxBytes) throw new ProtocolError(ErrorCode.too_large, `media larger than ${this.maxBytes} bytes`);
    const record: MediaRecord = { media: newMediaId(), owner, mime: m.mime, size: m.size, sha256: m.sha256, created: Date.now(), state: 'pending' };
    if (m.name !== undefined) record.name = m.name;
    const { db } = this.storage;
    // The blob key is noted now, not at upload: the sweeper keeps a blob while any media, even a
    // pending one about to upload the same content, names it.
    await db.media.transaction(() => {
      void db.media.put(record.media, record);
      void db.mediaBlobs.put([record.sha256, record.media], null);
    });
    await this.storage.barrier();
    const expires = record.created + UPLOAD_URL_SECONDS * 1000;
    return { media: record.media, upload: this.signedUrl(base, 'PUT', record.media, expires), expires };
  }

  signedUrl(base: string, method: SignedMethod, media: string, expires: number): string {
    const path = method === 'PUT' ? 'upload' : 'content';
    return `${base}/v1/media/${encodeURIComponent(media)}/${path}?expires=${expires}&sig=${this.signer.sign(method, media, expires)}`;
  }

  /** The media a signed URL names: 403 for a bad or expired signature, 404 when it is gone. */
  authorize(method: SignedMethod, media: string, expires: string, sig: string): MediaRecord {
    const exp = /^\d{1,16}$/.test(expires) ? Number(expires) : NaN;
    if (!this.signer.verify(method, media, exp, sig)) throw new ProtocolError(ErrorCode.forbidden, 'the signature is invalid or expired');
    const record = this.storage.db.media.get(media);
    if (!record) throw new ProtocolError(ErrorCode.not_found, 'no such media');
    return record;
  }

  /** Streams an upload into the blob store; the media is ready once the bytes matched. */
  async receive(record: MediaRecord, source: Readable): Promise<void> {
    await this.blobs.put(record.sha256, source, { size: record.size, sha256: record.sha256 });
    await this.markReady(record);
  }

  /** A completed resumable upload: its staged file, hashed as it arrived. */
  async receiveStaged(record: MediaRecord, file: string, size: number, sha256: string): Promise<void> {
    if (size !== record.size) throw new BlobMismatch(`${size} bytes, declared ${record.size}`);
    if (sha256 !== record.sha256) throw new BlobMismatch('the bytes do not match the declared sha256');
    await this.blobs.adopt(record.sha256, file, { size: record.size, sha256: record.sha256 });
    await this.markReady(record);
  }

  private async markReady(record: MediaRecord): Promise<void> {
    const { db } = this.storage;
    await db.media.transaction(() => {
      const now = db.media.get(record.media);
      if (!now) return; // deleted meanwhile: its blob is collected with the others
      void db.media.put(record.media, { ...now, state: 'ready' });
    });
    await this.storage.barrier();
  }

  /** The media object `send` and `channel.post` attach: uploaded and the sender's, else not_found. */
  attachable(user: string, media: string): MediaObject {
    const record = this.storage.db.media.get(media);
    if (!record || record.owner !== user || record.state !== 'ready') throw new ProtocolError(ErrorCode.not_found, 'no such media');
    return toObject(record);
  }

  /**
   * The media if `user` may download it: the owner, a member of a thread with a message carrying
   * it (sent after they joined), or anyone for a channel post (channels are public). Else null:
   * others cannot tell a media they may not read from one that does not exist.
   */
  readable(user: string, media: string): MediaRecord | null {
    const { db } = this.storage;
    const record = db.media.get(media);
    if (!record || record.state !== 'ready') return null;
    if (record.owner === user) return record;
    for (const { key } of db.mediaRefs.getRange({ start: [media], end: [media, '\uffff'] })) {
      const [, scope, seq] = key;
      if (scope.startsWith('c:')) return record;
      const thread = db.threads.get(scope);
      if (thread && thread.members.includes(user) && seq > (thread.joined[user] ?? 0)) return record;
    }
    return null;
  }

  /** A short-lived URL that serves the bytes: the store's own when it can, else Parley's. */
  async downloadUrl(base: string, record: MediaRecord): Promise<string> {
    const direct = await this.blobs.presignGet(record.sha256, {
      contentType: record.mime, expiresInSeconds: DOWNLOAD_URL_SECONDS, ...(record.name !== undefined ? { fileName: record.name } : {}),
    });
    return direct ?? this.signedUrl(base, 'GET', record.media, Date.now() + DOWNLOAD_URL_SECONDS * 1000);
  }
}

export function toObject(r: MediaRecord): MediaObject {
  const o: MediaObject = { id: r.media, mime: r.mime, size: r.size, sha256: r.sha256 };
  if (r.name !== undefined) o.name = r.name;
  return o;
}
