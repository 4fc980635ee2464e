// The search index (docs/architecture.md "Search"): each thread's messages in blocks of
// consecutive seqs, each block with a Bloom filter of its messages' terms and a 64-bit signature
// (a tiny Bloom filter) per message. A search tests a block's filter for every word of the query,
// then, in the blocks that may hold them all, each message's signature, and reads only the
// messages that may (the bodies decide). A send rewrites one small value — its thread's open block — in
// the message's own commit, instead of one index entry per word: the index costs a fraction of a
// per-term inverted index on the send path and in bytes, and a false positive costs a block read.
// Written only by the thread actor (actors/thread-search-index.ts), read by searches.
import { indexTerms } from '../protocol/search-words.js';
import type { StorageEnv } from './env.js';

export type SearchBlockTable = import('lmdb').Database<Buffer, [string, number]>;

/** Seqs are indexed while they fit the block header's 4 bytes (4 billion messages in one thread). */
export const MAX_INDEXED_SEQ = 2 ** 32 - 1;
/** A block holds at most this many messages… */
export const BLOCK_MESSAGES = 64;
/**
 * …and closes before its filter holds more distinct terms than this (a message with more — up to
 * MAX_TERMS_PER_MESSAGE — is a block of its own).
 */
export const BLOCK_TERMS = 400;
/** Bloom filter bits: ~10 per term at BLOCK_TERMS, with BLOOM_PROBES probes: < 1 % false positives when full. */
export const BLOOM_BITS = 4096;
export const BLOOM_PROBES = 7;
const BLOOM_BYTES = BLOOM_BITS / 8;
/** A message's signature: 64 bits, SIGNATURE_PROBES of them per term (~5 % false positives at 10 terms). */
export const SIGNATURE_PROBES = 3;
/** lastSeq (u32 BE), messages (u8), terms (u16 BE), then the filter, then an 8-byte signature per message. */
const HEADER = 7;
const SIGNATURES = HEADER + BLOOM_BYTES;
/** 1,031 bytes: small enough to stay in an LMDB leaf page (no overflow page per rewrite). */
export const BLOCK_BYTES = SIGNATURES + 8 * BLOCK_MESSAGES;

/** The probe positions of a term: double hashing over two FNV-1a hashes of its UTF-16 units. */
export function termProbes(term: string): number[] {
  return Array.from(probesInto(term, new Uint16Array(BLOOM_PROBES)));
}

/** termProbes into `out` (BLOOM_PROBES long), allocating nothing: the send path indexes every term. */
function probesInto(term: string, out: Uint16Array): Uint16Array {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ term.length;
  for (let i = 0; i < term.length; i++) {
    const c = term.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
  }
  h1 >>>= 0;
  h2 = (h2 | 1) >>> 0; // odd: no i·h2 (i < BLOOM_PROBES) is a multiple of BLOOM_BITS (2¹²), so the probes are distinct
  for (let i = 0; i < BLOOM_PROBES; i++) out[i] = (h1 + i * h2) % BLOOM_BITS;
  return out;
}

/** BlockBuilder.add's probes, reused term after term. */
const scratchProbes = new Uint16Array(BLOOM_PROBES);

/** A block being filled (or rebuilt) in memory. */
export class BlockBuilder {
  readonly bytes = Buffer.alloc(BLOCK_BYTES);
  messages = 0;
  terms = 0;
  lastSeq: number;

  constructor(readonly firstSeq: number) {
    this.lastSeq = firstSeq - 1;
  }

  /** A block read back (the open block of an earlier activation), to go on filling. */
  static from(firstSeq: number, stored: Uint8Array): BlockBuilder {
    const b = new BlockBuilder(firstSeq);
    b.bytes.set(stored.subarray(0, BLOCK_BYTES));
    b.lastSeq = b.bytes.readUInt32BE(0);
    b.messages = b.bytes[4];
    b.terms = b.bytes.readUInt16BE(5);
    return b;
  }

  /** Can the message `seq` with `terms` terms go in this block? (seqs stay consecutive; `terms` counts repeats: an upper bound) */
  fits(seq: number, terms: number): boolean {
    return seq === this.lastSeq + 1 && this.messages < BLOCK_MESSAGES && (this.messages === 0 || this.terms + terms <= BLOCK_TERMS);
  }

  add(seq: number, terms: readonly string[]): void {
    this.lastSeq = seq;
    const bloom = this.bytes;
    const signature = SIGNATURES + 8 * this.messages++;
    for (const term of terms) {
      const probes = probesInto(term, scratchProbes);
      for (let i = 0; i < SIGNATURE_PROBES; i++) {
        const bit = probes[i] & 63;
        bloom[signature + (bit >>> 3)] |= 1 << (bit & 7);
      }
      let fresh = false;
      for (let i = 0; i < BLOOM_PROBES; i++) {
        const bit = probes[i];
        const at = HEADER + (bit >>> 3);
        const mask = 1 << (bit & 7);
        if ((bloom[at] & mask) === 0) {
          bloom[at] |= mask;
          fresh = true;
        }
      }
      // A term whose bits were all set is (almost surely) in the block already: the filter holds no more.
      if (fresh) this.terms++;
    }
  }

  /** The value to store (a copy: the builder goes on filling). */
  encode(): Buffer {
    this.bytes.writeUInt32BE(this.lastSeq, 0);
    this.bytes[4] = this.messages;
    this.bytes.writeUInt16BE(Math.min(this.terms, 0xffff), 5);
    return Buffer.from(this.bytes);
  }
}

/** A stored block, read in place. */
export interface Block {
  firstSeq: number;
  lastSeq: number;
  value: Uint8Array;
}

/** Might this block hold every term? (`probes`: termProbes of each; false: certainly not) */
export function mayHoldAll(block: Block, probes: readonly number[][]): boolean {
  const v = block.value;
  for (const term of probes) {
    for (const bit of term) if ((v[HEADER + (bit >>> 3)] & (1 << (bit & 7))) === 0) return false;
  }
  return true;
}

/** The signature bits every one of the terms sets, as 8 bytes (see messageMayHold). */
export function signatureOf(probes: readonly number[][]): Uint8Array {
  const mask = new Uint8Array(8);
  for (const term of probes) {
    for (let i = 0; i < SIGNATURE_PROBES; i++) {
      const bit = term[i] & 63;
      mask[bit >>> 3] |= 1 << (bit & 7);
    }
  }
  return mask;
}

/** Might message `seq` of this block hold every term whose bits `mask` (signatureOf) has? */
export function messageMayHold(block: Block, seq: number, mask: Uint8Array): boolean {
  const v = block.value;
  const at = SIGNATURES + 8 * (seq - block.firstSeq);
  for (let i = 0; i < 8; i++) if ((v[at + i] & mask[i]) !== mask[i]) return false;
  return true;
}

const lastSeqOf = (v: Uint8Array): number => ((v[0] << 24) >>> 0) + (v[1] << 16) + (v[2] << 8) + v[3];

/** The thread's blocks that hold seqs below `below`, newest first. */
export function* blocksBelow(storage: StorageEnv, thread: string, below: number): Generator<Block> {
  const start: [string, number] = [thread, Math.min(below - 1, MAX_INDEXED_SEQ)];
  for (const { key, value } of storage.db.searchBlocks.getRange({ start, end: [thread, 0], reverse: true })) {
    yield { firstSeq: (key as [string, number])[1], lastSeq: lastSeqOf(value), value };
  }
}

/** The thread's newest block, if any. */
export function newestBlock(storage: StorageEnv, thread: string): Block | undefined {
  for (const b of blocksBelow(storage, thread, MAX_INDEXED_SEQ + 1)) return b;
  return undefined;
}

/** The block whose seqs include `seq`, if any. */
export function blockHolding(storage: StorageEnv, thread: string, seq: number): Block | undefined {
  for (const b of blocksBelow(storage, thread, seq + 1)) return b.lastSeq >= seq ? b : undefined;
  return undefined;
}

/** The thread's oldest blocks, oldest first, while every seq they hold is at or below `floor`. */
export function* blocksAtOrBelow(storage: StorageEnv, thread: string, floor: number): Generator<Block> {
  for (const { key, value } of storage.db.searchBlocks.getRange({ start: [thread, 0], end: [thread, MAX_INDEXED_SEQ + 1] })) {
    const block = { firstSeq: (key as [string, number])[1], lastSeq: lastSeqOf(value), value };
    if (block.lastSeq > floor) return;
    yield block;
  }
}

/** The terms a message contributes (none for a deleted one or a seq beyond the header's range). */
export function messageTerms(seq: number, body: string | undefined): string[] {
  return seq > MAX_INDEXED_SEQ ? [] : indexTerms(body);
}
