// The thread actor's side of the search index (storage/search-blocks.ts). It fills the thread's
// open block as messages are appended and writes it once per batch, in the messages' commit; it
// rebuilds a block from its messages when an edit or a delete for everyone changes one (so the
// index never keeps a word its message no longer has), and drops the blocks retention emptied.
// The thread actor is the only writer of its blocks: no other transaction races these rewrites.
import type { StoredMessage } from '../storage/env.js';
import { BlockBuilder, blockHolding, blocksAtOrBelow, MAX_INDEXED_SEQ, messageTerms, newestBlock, type Block } from '../storage/search-blocks.js';
import type { ActorContext } from './actor.js';

export class ThreadSearchIndex {
  /** The block being filled; undefined until first needed (then read back from LMDB), null when none. */
  private open: BlockBuilder | null | undefined;
  private dirty = false;
  /** Blocks written and not yet committed, by first seq: LMDB reads do not see them yet. */
  private readonly unsaved = new Map<number, Buffer>();

  /** @param message a message as the thread has it now (this batch's rewrites included) */
  constructor(private readonly thread: string, private readonly ctx: ActorContext, private readonly message: (seq: number) => StoredMessage | undefined) {}

  /** Message `seq` was appended to the log. */
  added(seq: number, body: string | undefined): void {
    if (seq > MAX_INDEXED_SEQ) return;
    const terms = messageTerms(seq, body);
    let open = this.openBlock();
    if (!open || !open.fits(seq, terms.length)) {
      if (open && this.dirty) this.save(open); // its final state
      open = this.open = new BlockBuilder(seq);
    }
    open.add(seq, terms);
    this.touch();
  }

  /** Message `seq` was edited or deleted for everyone: its block is rebuilt from what its messages hold now. */
  changed(seq: number): void {
    const open = this.openBlock();
    if (open && seq >= open.firstSeq && seq <= open.lastSeq) {
      this.open = this.rebuild(open.firstSeq, open.lastSeq);
      this.touch();
      return;
    }
    const block = this.unsavedHolding(seq) ?? blockHolding(this.ctx.storage, this.thread, seq);
    if (block) this.save(this.rebuild(block.firstSeq, block.lastSeq));
  }

  /** Retention deleted the thread's messages up to `floor`: the blocks holding only those go. */
  trimmed(floor: number): void {
    const gone = new Set<number>();
    for (const b of blocksAtOrBelow(this.ctx.storage, this.thread, floor)) gone.add(b.firstSeq);
    for (const [first, value] of this.unsaved) if (value.readUInt32BE(0) <= floor) gone.add(first);
    if (this.open && this.open.lastSeq <= floor) {
      gone.add(this.open.firstSeq);
      this.open = null;
      this.dirty = false;
    }
    for (const first of gone) {
      this.ctx.remove(this.ctx.storage.db.searchBlocks, [this.thread, first]);
      this.unsaved.delete(first);
    }
  }

  private openBlock(): BlockBuilder | null {
    if (this.open === undefined) {
      const newest = newestBlock(this.ctx.storage, this.thread);
      this.open = newest ? BlockBuilder.from(newest.firstSeq, newest.value) : null;
    }
    return this.open;
  }

  private rebuild(firstSeq: number, lastSeq: number): BlockBuilder {
    const b = new BlockBuilder(firstSeq);
    for (let seq = firstSeq; seq <= lastSeq; seq++) b.add(seq, messageTerms(seq, this.message(seq)?.body));
    return b;
  }

  private unsavedHolding(seq: number): Block | undefined {
    for (const [firstSeq, value] of this.unsaved) {
      const lastSeq = value.readUInt32BE(0);
      if (seq >= firstSeq && seq <= lastSeq) return { firstSeq, lastSeq, value };
    }
    return undefined;
  }

  /** The open block changed: written once, at the end of the batch. */
  private touch(): void {
    this.dirty = true;
    this.ctx.defer(this.flush);
  }

  private readonly flush = (): void => {
    if (!this.dirty || !this.open) return;
    this.dirty = false;
    this.save(this.open);
  };

  private save(b: BlockBuilder): void {
    const value = b.encode();
    this.ctx.put(this.ctx.storage.db.searchBlocks, [this.thread, b.firstSeq], value);
    this.unsaved.set(b.firstSeq, value);
    this.ctx.afterCommit(() => {
      if (this.unsaved.get(b.firstSeq) === value) this.unsaved.delete(b.firstSeq);
    });
  }
}
