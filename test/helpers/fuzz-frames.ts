// Seeded generator of hostile WebSocket frames for the fuzz test and loadtest/fuzz.ts: valid
// frames of every command, the same with nasty unknown fields, wrong types, byte mutations,
// random msgpack, raw ext types, deep nesting, text frames; and the four frames that once killed
// the server. Deterministic for a seed, so a failing run can be repeated.
import { Packr } from 'msgpackr';
import { Command } from '../../protocol/codes.js';
import { encodeFrame } from '../../protocol/wire.js';

/** mulberry32: a small seeded PRNG. */
export class Rng {
  constructor(private seed: number) {}
  next(): number {
    this.seed = (this.seed + 0x6d2b79f5) | 0;
    let x = Math.imul(this.seed ^ (this.seed >>> 15), 1 | this.seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
  /** Chooses a key by weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][];
    let r = this.next() * entries.reduce((s, [, w]) => s + w, 0);
    for (const [k, w] of entries) if ((r -= w) < 0) return k;
    return entries[0][0];
  }
}

/** Real ids make fuzzed commands travel further into the server than random ones would. */
export interface FuzzContext {
  users: string[];
  usernames: string[];
  threads: string[];
}

export interface FuzzFrame {
  /** which strategy made it (for the report) */
  kind: string;
  data: Uint8Array | string;
}

const cat = (...parts: (Uint8Array | number[])[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const str = (s: string) => encodeFrame(s as unknown as object);
const be = (n: number, bytes: number) => Array.from({ length: bytes }, (_, i) => Math.floor(n / 256 ** (bytes - 1 - i)) % 256);

/** A map frame from its encoded entries (keys and values as msgpack bytes). */
function mapOf(entries: [Uint8Array, Uint8Array][]): Uint8Array {
  const header = entries.length < 16 ? [0x80 + entries.length] : [0xde, ...be(entries.length, 2)];
  return cat(header, ...entries.flat());
}
/** The entries of a frame object, encoded, so raw values can join them. */
const entriesOf = (frame: Record<string, unknown>): [Uint8Array, Uint8Array][] =>
  Object.entries(frame).map(([k, v]) => [str(k), encodeFrame(v as object)]);

const bigintPackr = new Packr({ useRecords: false, useBigIntExtension: true });
const clonePackr = new Packr({ useRecords: false, structuredClone: true });

/** The four frames that each killed the server before the strict decoder (issue 7). */
export function knownKillers(): FuzzFrame[] {
  const deep = cat(Array(1300).fill(0x91), [0xc0]);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  return [
    { kind: 'killer: 1,300-deep unknown field', data: mapOf([[str('t'), str('inbox')], [str('x'), deep]]) },
    { kind: 'killer: bin in an unknown field', data: encodeFrame({ t: 'contacts.list', x: new Uint8Array([1, 2, 3, 4]) }) },
    { kind: 'killer: cycle extensions 0x69/0x70', data: clonePackr.pack({ t: 'inbox', x: cyclic }) },
    { kind: 'killer: bigint ext wider than 64 bits', data: bigintPackr.pack({ t: 'inbox', x: 2n ** 100n }) },
  ];
}

const STRINGS = ['', 'a', 'é', '😀', '\u0000', ' ', 'x'.repeat(41), 'd:a:b', 'g:', '__proto__', 'constructor', 'toString', 'null', '-1', '💥'.repeat(20)];

function randomString(rng: Rng): string {
  if (rng.chance(0.3)) return rng.pick(STRINGS);
  const n = rng.chance(0.05) ? rng.int(20_000) : rng.int(24);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(rng.chance(0.9) ? 32 + rng.int(95) : rng.int(0x10000));
  return s;
}

function randomId(rng: Rng, ctx: FuzzContext): string {
  const r = rng.int(10);
  if (r < 4 && ctx.users.length) return rng.pick(ctx.users);
  if (r < 6 && ctx.threads.length) return rng.pick(ctx.threads);
  if (r < 7 && ctx.users.length >= 2) {
    const [a, b] = [rng.pick(ctx.users), rng.pick(ctx.users)];
    return a < b ? `d:${a}:${b}` : `d:${b}:${a}`;
  }
  return `${rng.pick(['u', 'g:', 'd:', 'c', 'm'])}${rng.int(1e9).toString(36)}`;
}

const INTS = [0, 1, 2, 100, 101, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32, 2 ** 53 - 1, -1, -(2 ** 31), 1.5, NaN, Infinity, -Infinity];

/** A random plain value (as a JS value msgpackr can encode). */
function randomValue(rng: Rng, ctx: FuzzContext, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 6 : 8)) {
    case 0: return rng.pick(INTS);
    case 1: return rng.int(2 ** 32);
    case 2: return randomString(rng);
    case 3: return rng.chance(0.5);
    case 4: return null;
    case 5: return randomId(rng, ctx);
    case 6: return Array.from({ length: rng.int(5) }, () => randomValue(rng, ctx, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(5); i > 0; i--) o[rng.chance(0.5) ? randomString(rng).slice(0, 8) : rng.pick(['id', 'mime', 'size', 't', 'r'])] = randomValue(rng, ctx, depth + 1);
      return o;
    }
  }
}

/** Raw msgpack bytes no encoder of ours would write: ext types, wide ints, odd keys, deep nesting. */
function nastyValueBytes(rng: Rng): Uint8Array {
  switch (rng.int(12)) {
    case 0: return cat(Array(1 + rng.int(3000)).fill(rng.chance(0.5) ? 0x91 : 0xdc).flatMap((b) => (b === 0xdc ? [0xdc, 0, 1] : [b])), [0xc0]);
    case 1: return cat(Array(1 + rng.int(500)).fill([0x81, 0xa1, 0x6b]).flat(), [0xc0]); // nested maps
    case 2: return encodeFrame(rng.bytes(rng.int(300)) as unknown as object); // bin
    case 3: { // fixext of any type, incl. msgpackr's 0x69 / 0x70 / 0x42 / 0x72 / 0xff timestamp
      const type = rng.pick([0x69, 0x70, 0x42, 0x72, 0x73, 0x62, 0x74, 0x00, 0xff, rng.int(256)]);
      const [code, len] = rng.pick([[0xd4, 1], [0xd5, 2], [0xd6, 4], [0xd7, 8], [0xd8, 16]] as const);
      return cat([code, type], rng.bytes(len));
    }
    case 4: { // ext 8/16/32
      const len = rng.int(40);
      const code = rng.pick([0xc7, 0xc8, 0xc9]);
      const lenBytes = code === 0xc7 ? [len] : code === 0xc8 ? be(len, 2) : be(len, 4);
      return cat([code], lenBytes, [rng.pick([0x69, 0x70, 0x42, rng.int(256)])], rng.bytes(len));
    }
    case 5: return cat([rng.pick([0xcf, 0xd3])], rng.bytes(8)); // 64-bit ints of any size
    case 6: return bigintPackr.pack(BigInt(rng.int(1e9)) ** BigInt(2 + rng.int(8)));
    case 7: return cat([0x81], encodeFrame(rng.int(100) as unknown as object), [0xc0]); // an int key
    case 8: return cat([0x81, 0xa9], new TextEncoder().encode('__proto__'), [0x81, 0xa8], new TextEncoder().encode('polluted'), [0xc3]);
    case 9: return cat([0xc1]); // reserved
    case 10: return cat([rng.pick([0xdd, 0xdf, 0xdb, 0xc6])], [0xff, 0xff, 0xff, 0xff]); // a count that lies
    default: return encodeFrame(('x'.repeat(1 + rng.int(60_000))) as unknown as object); // a long string
  }
}

/** A valid frame of each command, with plausible values. */
function template(rng: Rng, ctx: FuzzContext): Record<string, unknown> {
  const id = () => randomId(rng, ctx);
  const some = (n: number) => Array.from({ length: 1 + rng.int(n) }, id);
  const r = rng.chance(0.7) ? { r: rng.int(1e6) } : {};
  const cid = `f${rng.int(1e9).toString(36)}`;
  const t = rng.pick(Object.values(Command));
  const fields: Record<string, Record<string, unknown>> = {
    [Command.hello]: { token: randomString(rng).slice(0, 40) || 'x', since: rng.int(100) },
    [Command.ping]: {},
    [Command.ack]: { u: rng.int(100) },
    [Command.send]: rng.chance(0.5) ? { cid, thread: id(), body: randomString(rng).slice(0, 200) || 'hi' } : { cid, to: rng.pick(ctx.users), body: 'fuzz' },
    [Command.history]: { thread: id(), ...(rng.chance(0.5) ? { before: 1 + rng.int(50) } : { after: rng.int(50) }), limit: 1 + rng.int(100) },
    [Command.read]: { thread: id(), seq: 1 + rng.int(50) },
    [Command.typing]: { thread: id() },
    [Command.inbox]: rng.chance(0.5) ? {} : { limit: 1 + rng.int(100), before: randomString(rng).slice(0, 30).padEnd(3, 'x') },
    [Command.threadGet]: { thread: id() },
    [Command.threadSet]: { thread: id(), muted: rng.chance(0.5), nickname: randomString(rng).slice(0, 30) },
    [Command.groupCreate]: { title: 'fuzz group', members: some(4), ...(rng.chance(0.5) ? { cid } : {}) },
    [Command.groupAdd]: { thread: id(), users: some(3) },
    [Command.groupRemove]: { thread: id(), users: some(3) },
    [Command.groupLeave]: { thread: id() },
    [Command.groupTitle]: { thread: id(), title: 'renamed' },
    [Command.contactsAdd]: { user: id() },
    [Command.contactsRemove]: { user: id() },
    [Command.contactsList]: {},
    [Command.privacySet]: { lastSeen: rng.pick(['everyone', 'contacts', 'nobody']) },
    [Command.block]: { user: id() },
    [Command.unblock]: { user: id() },
    [Command.blocksList]: {},
    [Command.presenceSub]: { users: some(5) },
    [Command.presenceUnsub]: { users: some(5) },
    [Command.usersGet]: { users: some(5) },
    [Command.userFind]: { username: ctx.usernames.length && rng.chance(0.7) ? rng.pick(ctx.usernames) : 'nobody_here' },
    [Command.channelCreate]: { name: 'fuzzchan', title: 'x' },
    [Command.channelGet]: rng.chance(0.5) ? { channel: id() } : { name: 'fuzzchan' },
    [Command.channelAdmin]: { channel: id(), user: id(), admin: rng.chance(0.5) },
    [Command.channelJoin]: { channel: id(), ...(rng.chance(0.5) ? { since: rng.int(10) } : {}) },
    [Command.channelLeave]: { channel: id() },
    [Command.channelPost]: { channel: id(), cid, body: 'x' },
    [Command.channelHistory]: { channel: id() },
    [Command.refresh]: { jwt: `${randomString(rng).slice(0, 20) || 'a'}.b.c` },
    [Command.schedule]: { cid, ...(rng.chance(0.5) ? { thread: id() } : { to: rng.pick(ctx.users) }), body: 'later', at: Date.now() + rng.int(3_600_000) },
    [Command.scheduleList]: {},
    [Command.scheduleCancel]: { job: id() },
    [Command.channelTrending]: { window: rng.pick(['1h', '24h']), limit: 1 + rng.int(50) },
    [Command.inviteCreate]: rng.chance(0.5) ? { thread: id() } : { channel: id(), uses: 1 + rng.int(5) },
    [Command.inviteRevoke]: { code: 'AbCdEf123456' },
    [Command.inviteList]: { thread: id() },
    [Command.inviteJoin]: { code: randomString(rng).slice(0, 12) || 'x' },
    [Command.edit]: { thread: id(), seq: 1 + rng.int(20), body: 'edited' },
    [Command.delete]: { thread: id(), seq: 1 + rng.int(20), forEveryone: rng.chance(0.5) },
    [Command.react]: { thread: id(), seq: 1 + rng.int(20), emoji: rng.pick(['👍', '❤️', 'ok']) },
    [Command.unreact]: { thread: id(), seq: 1 + rng.int(20) },
    [Command.forward]: { from: { thread: id(), seq: 1 + rng.int(20) }, to: rng.chance(0.5) ? { thread: id() } : { to: rng.pick(ctx.users) }, cid },
    [Command.search]: { q: randomString(rng).slice(0, 40) || 'fuzz', ...(rng.chance(0.3) ? { thread: id() } : {}), ...(rng.chance(0.3) ? { limit: 1 + rng.int(50) } : {}) },
  };
  return { t, ...r, ...(fields[t] ?? {}) };
}

function mutateBytes(rng: Rng, bytes: Uint8Array): Uint8Array {
  const out = Array.from(bytes);
  for (let n = 1 + rng.int(4); n > 0; n--) {
    const at = rng.int(out.length + 1);
    switch (rng.int(5)) {
      case 0: if (out.length) out[at % out.length] = rng.int(256); break;
      case 1: if (out.length) out[at % out.length] ^= 1 << rng.int(8); break;
      case 2: out.splice(at, 0, ...rng.bytes(1 + rng.int(4))); break;
      case 3: out.splice(at, 1 + rng.int(4)); break;
      default: out.length = Math.max(1, at); // truncate
    }
  }
  return Uint8Array.from(out);
}

/**
 * How often each strategy is drawn. Three bad frames close a socket, and a new logged-in socket
 * costs more than many frames, so frames that pass validation (valid ones, and valid ones with
 * hostile unknown fields, the category that used to kill the server) are the larger share.
 */
const WEIGHTS = {
  valid: 20,
  nastyUnknownField: 30,
  wrongType: 8,
  byteMutation: 10,
  randomValue: 5,
  randomBytes: 3,
  text: 2,
  badT: 4,
  killer: 3,
  bigInts: 5,
  oversize: 0.5,
};

/** One fuzz frame. */
export function fuzzFrame(rng: Rng, ctx: FuzzContext): FuzzFrame {
  const kind = rng.weighted(WEIGHTS);
  switch (kind) {
    case 'valid': return { kind, data: encodeFrame(template(rng, ctx)) };
    case 'nastyUnknownField': {
      const entries = entriesOf(template(rng, ctx));
      for (let n = 1 + rng.int(2); n > 0; n--) entries.push([str(rng.pick(['x', 'zz', '__proto__', 'media', 'extra'])), nastyValueBytes(rng)]);
      return { kind, data: mapOf(entries) };
    }
    case 'wrongType': {
      const frame = template(rng, ctx);
      const keys = Object.keys(frame).filter((k) => k !== 't');
      if (keys.length) frame[rng.pick(keys)] = randomValue(rng, ctx);
      return { kind, data: encodeFrame(frame) };
    }
    case 'byteMutation': return { kind, data: mutateBytes(rng, encodeFrame(template(rng, ctx))) };
    case 'randomValue': return { kind, data: encodeFrame(randomValue(rng, ctx) as object) };
    case 'randomBytes': return { kind, data: rng.bytes(1 + rng.int(200)) };
    case 'text': return { kind, data: rng.chance(0.5) ? JSON.stringify(template(rng, ctx)) : randomString(rng) || 'x' };
    case 'badT': {
      const frame = template(rng, ctx);
      frame.t = rng.pick<unknown>([randomString(rng), 5, null, [], {}, 'channel.create', 'SEND', 'send ', '']);
      if (rng.chance(0.2)) delete frame.t;
      return { kind, data: encodeFrame(frame) };
    }
    case 'killer': return rng.pick(knownKillers());
    case 'bigInts': {
      const entries = entriesOf(template(rng, ctx));
      const k = rng.int(entries.length);
      if (k > 0) entries[k][1] = cat([rng.pick([0xcf, 0xd3, 0xcb])], rng.bytes(8));
      return { kind, data: mapOf(entries) };
    }
    default: return { kind: 'oversize', data: encodeFrame({ t: 'send', cid: 'big', thread: 'g:x', body: 'x'.repeat(129 * 1024 + rng.int(100_000)) }) };
  }
}
