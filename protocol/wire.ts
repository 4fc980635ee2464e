// Wire encoding of client/server frames: plain MessagePack maps, no msgpackr records or
// extensions (PROTOCOL.md §1), so any msgpack library in any language can read them.
import { Packr } from 'msgpackr';

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  // A stray undefined becomes nil, never msgpackr's private extension.
  encodeUndefinedAsNil: true,
  // int64 on the wire (timestamps) decodes to a JS number: every integer we send is < 2^53.
  int64AsType: 'number',
});

/** Encodes one frame as plain msgpack. */
export function encodeFrame(frame: object): Uint8Array {
  return packr.pack(frame);
}

/** Decodes one frame; throws on malformed msgpack. Does not validate the shape. */
export function decodeFrame(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/**
 * msgpackr writes integers ≥ 2^32 (our millisecond timestamps) as float64; a plain msgpack
 * reader in a typed language expects an integer. Wrapping them as BigInt makes msgpackr write
 * int64, which every decoder reads as an integer (and ours back as a JS number).
 */
export function wireTime(ms: number): number {
  return BigInt(ms) as unknown as number;
}
