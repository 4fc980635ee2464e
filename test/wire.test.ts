// The wire codec (docs/protocol.md §1): int64 times round trip as numbers, and client frames are plain
// msgpack only — every extension type refused, nesting bounded, keys strings, no prototype games,
// and a bin in an unknown field decoded but never forwarded.
import t from 'tap';
import { Packr } from 'msgpackr';
import { frameCheckers, knownFields } from '../protocol/validate.js';
import { answerErrorCode, decodeClientFrame, decodeFrame, encodeFrame, encodeShared, MAX_FRAME_DEPTH, scanPlainMsgpack, wireTime, withU } from '../protocol/wire.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
/** A one-entry map {t: "inbox", x: <value bytes>}: a frame that passes validation but carries `value` unknown. */
const inboxWith = (value: Uint8Array) => Uint8Array.from([0x82, 0xa1, 0x74, 0xa5, ...Buffer.from('inbox'), 0xa1, 0x78, ...value]);

t.test('times above 2^32 go out as int64 and come back as the same number', async (t) => {
  const ms = 1_796_216_562_035;
  const bytes = encodeFrame({ t: 'msg', ts: wireTime(ms) });
  t.ok(Buffer.from(bytes).includes(Buffer.from([0xcf])) || Buffer.from(bytes).includes(Buffer.from([0xd3])), 'written as a msgpack int64/uint64');
  t.equal((decodeFrame(bytes) as { ts: number }).ts, ms, 'trusted decoder');
  t.equal(decodeClientFrame(bytes).ts, ms, 'client decoder');
  t.equal(decodeClientFrame(encodeFrame({ t: 'x', n: Number.MAX_SAFE_INTEGER })).n, Number.MAX_SAFE_INTEGER);
});

t.test('a frame encoded once with u appended is the frame with u, for every size of u', async (t) => {
  const fields = { t: 'msg', thread: 'd:a:b', seq: 7, id: 'x1', from: 'a', device: 'p', ts: wireTime(1_800_000_000_000), body: 'hé' };
  const shared = encodeShared(fields);
  for (const u of [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
    const bytes = withU(shared, u);
    t.same(decodeFrame(bytes), { ...fields, u }, `u = ${u} decodes`);
    t.same(decodeClientFrame(bytes), { ...fields, u }, `u = ${u} is plain msgpack`);
    if (u < 2 ** 32) t.same(Buffer.from(bytes), Buffer.from(encodeFrame({ ...fields, u })), `u = ${u}: the bytes a full encode gives`);
  }
  t.throws(() => encodeShared(Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, i]))), RangeError, 'at most 14 fields');
});

t.test('plain msgpack decodes: every plain type, in a map with a string t', async (t) => {
  const value = { t: 'x', s: 'é', i: -5, u: 300, f: 1.5, b: true, n: null, a: [1, [2, [3]]], m: { k: 'v' }, bin: new Uint8Array([1, 2]) };
  const out = decodeClientFrame(encodeFrame(value));
  t.same(out, { ...value, bin: Buffer.from([1, 2]) });
});

t.test('each msgpack extension type is refused', async (t) => {
  const exts: [string, string][] = [
    ['fixext 1 (0xd4)', 'd4 01 00'],
    ['fixext 2 (0xd5)', 'd5 01 0000'],
    ['fixext 4 (0xd6), the timestamp ext', 'd6 ff 00000000'],
    ['fixext 8 (0xd7)', 'd7 01 0000000000000000'],
    ['fixext 16 (0xd8)', 'd8 01 00000000000000000000000000000000'],
    ['ext 8 (0xc7)', 'c7 01 01 00'],
    ['ext 16 (0xc8)', 'c8 0001 01 00'],
    ['ext 32 (0xc9)', 'c9 00000001 01 00'],
    ['msgpackr cycle ext 0x70 (fixext)', 'd4 70 00'],
    ['msgpackr cycle ext 0x69 (ext 8)', 'c7 01 69 00'],
    ['msgpackr undefined (fixext 1 type 0)', 'd4 00 00'],
  ];
  for (const [name, bytes] of exts) {
    t.throws(() => decodeClientFrame(inboxWith(hex(bytes))), { code: 'bad_frame', message: /extension/ }, name);
  }
  // msgpackr's own encodings that need extensions: a bigint wider than 64 bits, a cyclic structure.
  const wide = new Packr({ useBigIntExtension: true, useRecords: false }).pack({ t: 'inbox', x: 2n ** 70n });
  t.throws(() => decodeClientFrame(wide), { code: 'bad_frame', message: /extension/ }, 'bigint wider than 64 bits');
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const withCycles = new Packr({ structuredClone: true, useRecords: false }).pack({ t: 'inbox', x: cyclic });
  t.throws(() => decodeClientFrame(withCycles), { code: 'bad_frame', message: /extension/ }, 'structured-clone cycle');
  t.throws(() => decodeClientFrame(new Packr().pack({ t: 'inbox', when: new Date() })), { code: 'bad_frame' }, 'a Date (timestamp ext)');
  t.throws(() => decodeClientFrame(new Packr({ useRecords: true }).pack({ t: 'inbox' })), { code: 'bad_frame' }, 'a msgpackr record');
});

t.test('nesting is bounded without recursion, so 100,000 levels cannot exhaust the stack', async (t) => {
  const nested = (levels: number) => Uint8Array.from([...Array(levels).fill(0x91), 0xc0]);
  t.doesNotThrow(() => decodeClientFrame(inboxWith(nested(MAX_FRAME_DEPTH - 1))), 'at the bound (the map is one level)');
  t.throws(() => decodeClientFrame(inboxWith(nested(MAX_FRAME_DEPTH))), { code: 'bad_frame', message: /deeper/ }, 'one past');
  t.throws(() => decodeClientFrame(inboxWith(nested(1300))), { code: 'bad_frame', message: /deeper/ }, 'the 1,300 of the fuzz report');
  t.throws(() => decodeClientFrame(inboxWith(nested(100_000))), { code: 'bad_frame' }, '100,000');
  // Maps count too.
  const maps = Uint8Array.from([...Array(40).fill([0x81, 0xa1, 0x6b]).flat(), 0xc0]);
  t.throws(() => decodeClientFrame(inboxWith(maps)), { message: /deeper/ }, 'nested maps');
});

t.test('only a complete msgpack map is a frame', async (t) => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty', new Uint8Array(0), /empty/],
    ['an array', encodeFrame([1, 2] as unknown as object), /map/],
    ['a string', hex('a161'), /map/],
    ['truncated map', encodeFrame({ t: 'inbox', x: 'abc' }).subarray(0, 9), /truncated/],
    ['truncated str32 length', inboxWith(hex('db 0000')), /truncated/],
    ['count larger than the bytes', hex('df ffffffff'), /truncated/],
    ['array count larger than the bytes', inboxWith(hex('dd 7fffffff 00')), /truncated/],
    ['bytes after the map', Uint8Array.from([...encodeFrame({ t: 'inbox' }), 0xc0]), /after/],
    ['reserved byte 0xc1', inboxWith(hex('c1')), /reserved/],
    ['an integer key', hex('82 a1 74 a5 696e626f78 01 c0'), /keys must be strings/],
    ['a nil key', hex('82 a1 74 a5 696e626f78 c0 c0'), /keys must be strings/],
    ['a map key nested', inboxWith(hex('81 81 a1 6b c0 c0')), /keys must be strings/],
  ];
  for (const [name, bytes, why] of cases) t.throws(() => decodeClientFrame(bytes), { code: 'bad_frame', message: why }, name);
  t.equal(scanPlainMsgpack(encodeFrame({ t: 'inbox' })), null);
});

t.test('__proto__ as a key sets no prototype and pollutes nothing', async (t) => {
  // {t: "inbox", "__proto__": {polluted: true}}
  const bytes = Uint8Array.from([0x82, 0xa1, 0x74, 0xa5, ...Buffer.from('inbox'), 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa8, ...Buffer.from('polluted'), 0xc3]);
  const frame = decodeClientFrame(bytes);
  t.equal(Object.getPrototypeOf(frame), Object.prototype, 'the frame keeps the plain prototype');
  t.equal((frame as { polluted?: unknown }).polluted, undefined);
  t.equal(({} as { polluted?: unknown }).polluted, undefined, 'Object.prototype untouched');
  t.equal(frameCheckers.get('inbox')!(frame), null, 'still a valid inbox');
  t.same(Object.keys(knownFields('inbox', frame)), ['t'], 'and the odd key is not forwarded');
});

t.test('a bin in an unknown field decodes as a copy and is not forwarded', async (t) => {
  const buffer = new ArrayBuffer(64);
  const src = encodeFrame({ t: 'contacts.list', r: 1, x: new Uint8Array([9, 9, 9]) });
  new Uint8Array(buffer).set(src);
  const frame = decodeClientFrame(new Uint8Array(buffer, 0, src.length));
  // uWS detaches the frame's buffer after its callback: nothing decoded may be a view onto it.
  structuredClone(buffer, { transfer: [buffer] });
  t.equal(buffer.byteLength, 0, 'the source buffer is detached');
  t.same([...(frame.x as Uint8Array)], [9, 9, 9], 'the bin survives: it was copied');
  t.equal(frameCheckers.get('contacts.list')!(frame), null);
  const forwarded = knownFields('contacts.list', frame);
  t.same(forwarded, { t: 'contacts.list', r: 1 });
  t.doesNotThrow(() => encodeFrame(forwarded), 'what is forwarded packs');
});

t.test('integers beyond 2^53 decode to numbers the schemas refuse', async (t) => {
  const u64 = Uint8Array.from([0x82, 0xa1, 0x74, 0xa3, ...Buffer.from('ack'), 0xa1, 0x75, ...hex('cf 0020000000000001')]);
  const ack = decodeClientFrame(u64);
  t.type(ack.u, 'number', 'no BigInt leaks out of the decoder');
  t.match(frameCheckers.get('ack')!(ack), /u/, 'refused by the schema');
  const i64 = Uint8Array.from([0x82, 0xa1, 0x74, 0xa3, ...Buffer.from('ack'), 0xa1, 0x75, ...hex('d3 8000000000000000')]);
  t.match(frameCheckers.get('ack')!(decodeClientFrame(i64)), /u/, 'the most negative int64 too');
});

t.test('answerErrorCode reads ok and err answers (metrics), decoding only errors', async (t) => {
  t.equal(answerErrorCode(encodeFrame({ t: 'ok', r: 1, thread: 'd:a:b', seq: 3 })), null);
  t.equal(answerErrorCode(encodeFrame({ t: 'err', r: 1, code: 'not_found', msg: 'no such user' })), 'not_found');
  t.equal(answerErrorCode(encodeFrame({ t: 'err', code: 'forbidden', msg: 'x', retry: 5 })), 'forbidden', 'without r');
});
