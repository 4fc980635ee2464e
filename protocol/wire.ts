// Wire encoding of client/server frames: plain MessagePack maps, no msgpackr records or
// extensions (docs/protocol.md §1), so any msgpack library in any language can read them.
// Two decoders: `decodeClientFrame` for bytes from the network (strict, never trusts its input)
// and `decodeFrame` for bytes we encoded ourselves (the server's frames, the user logs).
import { Packr } from 'msgpackr';
import { ErrorCode } from './codes.js';
import { ProtocolError } from './errors.js';

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  // A stray undefined becomes nil, never msgpackr's private extension.
  encodeUndefinedAsNil: true,
  // int64 on the wire (timestamps) decodes to a JS number: every integer we send is < 2^53.
  int64AsType: 'number',
});

/** Client bytes die with uWS's callback (their ArrayBuffer is detached): a `bin` must be a copy, not a view. */
const clientPackr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number', copyBuffers: true });

/** Containers a client frame may nest: the deepest frame we define is 3 (send.media), so 32 is generous. */
export const MAX_FRAME_DEPTH = 32;

/** Encodes one frame as plain msgpack. */
export function encodeFrame(frame: object): Uint8Array {
  return packr.pack(frame);
}

/**
 * `fields` encoded once, for frames that differ only in a trailing `u` (one message logged by
 * every member): `withU(shared, u)` is the bytes of `{...fields, u}` without encoding again.
 * At most 14 fields.
 */
export function encodeShared(fields: object): Uint8Array {
  const bytes = packr.pack(fields);
  // msgpackr writes an object's header as map16 (0xde + count); a fixmap has its count inside.
  const count = bytes[0] === 0xde ? (bytes[1] << 8) | bytes[2] : (bytes[0] & 0xf0) === 0x80 ? bytes[0] & 0x0f : -1;
  if (count < 0 || count > 14) throw new RangeError('encodeShared: a map of at most 14 fields');
  return bytes;
}

/** The frame `encodeShared` encoded, with `u` (a safe non-negative integer) appended as its last field. */
export function withU(shared: Uint8Array, u: number): Uint8Array {
  const uBytes = u < 0x80 ? 1 : u < 0x100 ? 2 : u < 0x10000 ? 3 : u < 0x100000000 ? 5 : 9;
  const out = new Uint8Array(shared.length + 2 + uBytes);
  out.set(shared);
  if (shared[0] === 0xde) out[2] = shared[2] + 1; // one more field (count ≤ 14: the low byte)
  else out[0] = shared[0] + 1;
  let i = shared.length;
  out[i++] = 0xa1; // "u"
  out[i++] = 0x75;
  if (uBytes === 1) out[i] = u;
  else if (uBytes === 2) (out[i] = 0xcc), (out[i + 1] = u);
  else if (uBytes === 3) (out[i] = 0xcd), (out[i + 1] = u >>> 8), (out[i + 2] = u & 0xff);
  else if (uBytes === 5) {
    out[i] = 0xce;
    for (let b = 0; b < 4; b++) out[i + 4 - b] = (u >>> (8 * b)) & 0xff;
  } else {
    out[i] = 0xcf; // big-endian uint64: high 32 bits, then low
    const high = Math.floor(u / 0x100000000);
    const low = u >>> 0;
    for (let b = 0; b < 4; b++) {
      out[i + 4 - b] = (high >>> (8 * b)) & 0xff;
      out[i + 8 - b] = (low >>> (8 * b)) & 0xff;
    }
  }
  return out;
}

/** Decodes one frame we encoded ourselves; throws on malformed msgpack. Does not validate the shape. */
export function decodeFrame(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/**
 * Decodes one frame from a client: a msgpack map of plain msgpack only. Throws ProtocolError
 * bad_frame, saying why, for anything else. The value still needs its schema (protocol/validate.ts):
 * fields the schema does not know are decoded here but must not be forwarded.
 */
export function decodeClientFrame(bytes: Uint8Array): Record<string, unknown> {
  const problem = scanPlainMsgpack(bytes);
  if (problem !== null) throw new ProtocolError(ErrorCode.bad_frame, problem);
  try {
    return clientPackr.unpack(bytes) as Record<string, unknown>;
  } catch (err) {
    // The scan has checked the structure, so this is rare (e.g. a string that is not UTF-8).
    throw new ProtocolError(ErrorCode.bad_frame, 'frame is not valid msgpack', { cause: err });
  }
}

// Open containers of the scan, preallocated: the scan allocates nothing.
const itemsLeft = new Float64Array(MAX_FRAME_DEPTH + 1);
const inMap = new Uint8Array(MAX_FRAME_DEPTH + 1);

/**
 * A byte-level walk of a msgpack value, without building it: checks that it is one map, complete,
 * with nothing after it, nested at most MAX_FRAME_DEPTH deep, with string keys only, and with no
 * extension type at all (fixext 0xd4–0xd8, ext 0xc7–0xc9: msgpackr's records, cycles, bigints and
 * undefined all live there) and no reserved byte 0xc1. Returns null when it is, else the reason.
 * Iterative, so a hostile nesting cannot exhaust the stack. msgpackr then decodes what passed.
 */
export function scanPlainMsgpack(b: Uint8Array): string | null {
  const n = b.length;
  if (n === 0) return 'empty frame';
  const first = b[0];
  if (!((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf)) return 'a frame is a msgpack map';
  let p = 0;
  let depth = 0;
  itemsLeft[0] = 1;
  inMap[0] = 0;
  for (;;) {
    if (itemsLeft[depth] === 0) {
      if (depth === 0) break;
      depth--;
      continue;
    }
    const left = --itemsLeft[depth];
    if (p >= n) return 'frame is truncated';
    const c = b[p++];
    // In a map of k entries the 2k items alternate key, value: a key leaves an odd count behind.
    if (inMap[depth] === 1 && left % 2 === 1) {
      let len: number;
      if (c >= 0xa0 && c <= 0xbf) len = c - 0xa0;
      else if (c === 0xd9) len = p < n ? b[p++] : -1;
      else if (c === 0xda) len = p + 1 < n ? (b[p++] << 8) | b[p++] : -1;
      else if (c === 0xdb) len = p + 3 < n ? b[p++] * 0x1000000 + ((b[p++] << 16) | (b[p++] << 8) | b[p++]) : -1;
      else return 'map keys must be strings';
      if (len < 0 || (p += len) > n) return 'frame is truncated';
      continue;
    }
    if (c <= 0x7f || c >= 0xe0) continue; // fixints
    let skip = 0; // bytes of payload after the header
    let items = -1; // for a container: its items
    let isMap = 0;
    if (c <= 0x8f) {
      items = (c - 0x80) * 2;
      isMap = 1;
    } else if (c <= 0x9f) items = c - 0x90;
    else if (c <= 0xbf) skip = c - 0xa0;
    else {
      switch (c) {
        case 0xc0: case 0xc2: case 0xc3: continue; // nil, false, true
        case 0xc1: return 'reserved byte 0xc1';
        case 0xc7: case 0xc8: case 0xc9:
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
          return 'msgpack extension types are not allowed';
        case 0xc4: case 0xd9: // bin8, str8
          if (p >= n) return 'frame is truncated';
          skip = b[p++];
          break;
        case 0xc5: case 0xda: // bin16, str16
          if (p + 1 >= n) return 'frame is truncated';
          skip = (b[p++] << 8) | b[p++];
          break;
        case 0xc6: case 0xdb: // bin32, str32
          if (p + 3 >= n) return 'frame is truncated';
          skip = b[p++] * 0x1000000 + ((b[p++] << 16) | (b[p++] << 8) | b[p++]);
          break;
        case 0xca: skip = 4; break; // float32
        case 0xcb: skip = 8; break; // float64
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        // int64 and uint64 decode to a (possibly rounded) number; the schemas bound integers to 2^53.
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xdc: case 0xde: // array16, map16
          if (p + 1 >= n) return 'frame is truncated';
          items = (b[p++] << 8) | b[p++];
          break;
        case 0xdd: case 0xdf: // array32, map32
          if (p + 3 >= n) return 'frame is truncated';
          items = b[p++] * 0x1000000 + ((b[p++] << 16) | (b[p++] << 8) | b[p++]);
          break;
      }
      if (c === 0xde || c === 0xdf) {
        items *= 2;
        isMap = 1;
      }
    }
    if (items < 0) {
      if ((p += skip) > n) return 'frame is truncated';
      continue;
    }
    // Every item takes at least one byte: a count beyond the bytes left is a lie, refused before
    // anyone allocates for it.
    if (items > n - p) return 'frame is truncated';
    if (items === 0) continue;
    if (depth === MAX_FRAME_DEPTH) return `frame nests deeper than ${MAX_FRAME_DEPTH}`;
    depth++;
    itemsLeft[depth] = items;
    inMap[depth] = isMap;
  }
  return p === n ? null : 'bytes after the frame';
}

/**
 * msgpackr writes integers ≥ 2^32 (our millisecond timestamps) as float64; a plain msgpack
 * reader in a typed language expects an integer. Wrapping them as BigInt makes msgpackr write
 * int64, which every decoder reads as an integer (and ours back as a JS number).
 */
export function wireTime(ms: number): number {
  return BigInt(ms) as unknown as number;
}

/**
 * The error code of an encoded answer frame, or null for an `ok` — an `ok` is recognised by its
 * first bytes (a map whose first key is t with a 2-character value) and never decoded.
 */
export function answerErrorCode(bytes: Uint8Array): string | null {
  // The map header (msgpackr writes map16: 0xde + 2 bytes; a fixmap is 1 byte), then fixstr "t",
  // then the value: fixstr of 2 ("ok") is not an error.
  const at = bytes[0] === 0xde ? 3 : (bytes[0] & 0xf0) === 0x80 ? 1 : -1;
  if (at > 0 && bytes[at] === 0xa1 && bytes[at + 1] === 0x74 && bytes[at + 2] === 0xa2) return null;
  const frame = decodeFrame(bytes) as { t?: unknown; code?: unknown };
  return frame.t === 'err' ? String(frame.code) : null;
}
