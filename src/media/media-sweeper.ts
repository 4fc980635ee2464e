// Collects media nobody can use any more (docs/protocol.md "Media", "Retention"): a pending media
// whose upload URL expired, and a ready media that no message or post carries once it is older
// than MEDIA_GRACE (never attached, or its messages were all deleted by retention). The record
// goes, then its blob when no other media has the same content. The table is walked in slices
// with the event loop free in between, so the gateway never stalls on a pass.
import type { Logger } from 'pino';
import type { MediaRecord, StorageEnv } from '../../storage/env.js';
import type { Metrics } from '../metrics.js';
import type { BlobStore } from './blob-store.js';
import { UPLOAD_URL_SECONDS } from './media-library.js';
import type { UploadStaging } from './upload-staging.js';

/** Media records read per slice. */
const SLICE = 256;

export interface MediaSweeperOptions { graceMs: number; everyMs: number }

export class MediaSweeper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly storage: StorageEnv,
    private readonly blobs: BlobStore,
    private readonly staging: UploadStaging,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: MediaSweeperOptions,
  ) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.pass().then(() => undefined, (err: unknown) => this.log.error({ err }, 'media sweep failed')).finally(() => {
        this.running = null;
        if (!this.stopped) this.timer = setTimeout(tick, this.opts.everyMs).unref();
      });
    };
    this.timer = setTimeout(tick, this.opts.everyMs).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One walk over the media table; resolves with how many media it deleted. */
  async pass(now = Date.now()): Promise<number> {
    const { db } = this.storage;
    let after: string | undefined;
    let collected = 0;
    for (;;) {
      const page = [...db.media.getRange({ ...(after !== undefined ? { start: after, exclusiveStart: true } : {}), limit: SLICE })];
      if (page.length === 0) break;
      for (const { key, value } of page) if (this.expired(value, now)) collected += await this.collect(value);
      after = page[page.length - 1].key;
      if (this.stopped) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (collected > 0) this.log.info({ collected }, 'media collected');
    return collected;
  }

  private expired(m: MediaRecord, now: number): boolean {
    if (m.state === 'pending') return now > m.created + UPLOAD_URL_SECONDS * 1000 + this.opts.graceMs;
    if (now <= m.created + this.opts.graceMs) return false;
    return !this.carried(m.media);
  }

  /** Does a message or post still carry this media? */
  private carried(media: string): boolean {
    for (const _ of this.storage.db.mediaRefs.getKeys({ start: [media], end: [media, '\uffff'], limit: 1 })) return true;
    return false;
  }

  /** Does any media (pending or ready) still name this blob? */
  private named(sha256: string): boolean {
    for (const _ of this.storage.db.mediaBlobs.getKeys({ start: [sha256], end: [sha256, '\uffff'], limit: 1 })) return true;
    return false;
  }

  private async collect(m: MediaRecord): Promise<number> {
    const { db } = this.storage;
    // Conditional: a ref written since (a message sent in the meantime) keeps the media.
    const deleted = await db.media.transaction(() => {
      if (this.carried(m.media)) return false;
      void db.media.remove(m.media);
      void db.mediaBlobs.remove([m.sha256, m.media]);
      return true;
    });
    if (!deleted) return 0;
    await this.storage.barrier();
    await this.staging.discard(m.media);
    // The last media naming the blob: it goes too (a pending one may name a blob others uploaded).
    if (!this.named(m.sha256)) await this.blobs.delete(m.sha256);
    this.metrics.counts.mediaCollected++;
    return 1;
  }
}
