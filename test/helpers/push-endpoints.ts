// Real local endpoints for the push providers, started by a test and torn down with it: an HTTP
// server (webhook, Web Push service, Google token endpoint + FCM) and an HTTP/2 TLS server with a
// self-signed certificate made at test time (APNs). Each records what arrives and answers from a
// script the test sets (a status, headers and body; `hang` never answers; `reset` drops the
// connection), and counts its open connections so a test can see a provider's close() free them.
// Also the receiving side's crypto, written here independently of the code under test: RFC 8291
// aes128gcm decryption with the subscription's private keys, and JWT (ES256, RS256) checks.
import { createECDH, createPublicKey, hkdfSync, createDecipheriv, verify, type KeyLike } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';

interface Teardown { teardown(fn: () => unknown): void }

/** A temp directory removed with the test (key files, certificates). */
export function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'parley-push-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export type Answer =
  | { status: number; headers?: Record<string, string>; body?: string | object }
  | 'hang'
  | 'reset';

export interface Received { method: string; path: string; headers: Record<string, string | string[] | undefined>; body: Buffer }

/** What every endpoint offers a test. */
export interface PushEndpoint {
  /** base URL, e.g. http://127.0.0.1:1234 */
  url: string;
  /** the scripted requests that arrived, in order (not auxiliary ones such as token exchanges) */
  received: Received[];
  /** answers for the next requests, in order; once used up, `fallback` */
  answer(...answers: Answer[]): void;
  /** resolves once `count` requests have arrived */
  arrivals(count: number): Promise<void>;
  /** connections now open */
  connections(): number;
  /** resolves once no connection is open */
  allClosed(): Promise<void>;
  /** resolves once every request answered `hang` was given up by the client (its stream or socket closed) */
  hungClosed(): Promise<void>;
}

class Script {
  readonly received: Received[] = [];
  private readonly queue: Answer[] = [];
  private waiters: { count: number; resolve: () => void }[] = [];
  constructor(private readonly fallback: Answer) {}
  answer(...a: Answer[]): void { this.queue.push(...a); }
  next(): Answer { return this.queue.shift() ?? this.fallback; }
  record(r: Received): void {
    this.received.push(r);
    this.waiters = this.waiters.filter((w) => (this.received.length >= w.count ? (w.resolve(), false) : true));
  }
  arrivals(count: number): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }
  private readonly hung = new Set<object>();
  private hungWaiters: (() => void)[] = [];
  hang(request: { once(e: 'close', f: () => void): unknown }): void {
    this.hung.add(request);
    request.once('close', () => {
      this.hung.delete(request);
      if (this.hung.size === 0) for (const f of this.hungWaiters.splice(0)) f();
    });
  }
  hungClosed(): Promise<void> {
    return this.hung.size === 0 ? Promise.resolve() : new Promise((resolve) => this.hungWaiters.push(resolve));
  }
}

class Connections {
  private readonly open = new Set<{ destroy(): void }>();
  private idle: (() => void)[] = [];
  add(c: { destroy(): void; once(e: 'close', f: () => void): unknown }): void {
    this.open.add(c);
    c.once('close', () => {
      this.open.delete(c);
      if (this.open.size === 0) for (const f of this.idle.splice(0)) f();
    });
  }
  size(): number { return this.open.size; }
  allClosed(): Promise<void> {
    return this.open.size === 0 ? Promise.resolve() : new Promise((resolve) => this.idle.push(resolve));
  }
  destroyAll(): void { for (const c of this.open) c.destroy(); }
}

function bodyOf(a: { body?: string | object }): string {
  return a.body === undefined ? '' : typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
}

export interface HttpEndpointOptions {
  /** answer when the script is empty (default 200 with no body) */
  fallback?: Answer;
  /** requests this handles (returns true) are answered by it and not recorded, e.g. a token endpoint */
  aux?: (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => boolean;
}

/** An HTTP/1.1 server on 127.0.0.1 with a free port. */
export async function startHttpEndpoint(t: Teardown, options: HttpEndpointOptions = {}): Promise<PushEndpoint> {
  const script = new Script(options.fallback ?? { status: 200 });
  const conns = new Connections();
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      if (options.aux?.(req, body, res)) return;
      script.record({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
      const a = script.next();
      if (a === 'hang') return script.hang(res);
      if (a === 'reset') return req.socket.destroy();
      res.writeHead(a.status, a.headers ?? {});
      res.end(bodyOf(a));
    });
  });
  server.keepAliveTimeout = 0; // idle connections stay until the client closes them: close() must
  server.on('connection', (s: Socket) => conns.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { conns.destroyAll(); server.close(() => resolve()); }));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received: script.received,
    answer: (...a) => script.answer(...a),
    arrivals: (n) => script.arrivals(n),
    connections: () => conns.size(),
    allClosed: () => conns.allClosed(),
    hungClosed: () => script.hungClosed(),
  };
}

export interface Http2Endpoint extends PushEndpoint {
  /** a PEM file with the server's self-signed certificate, for the client to trust */
  caFile: string;
  /** sends GOAWAY on every open session (APNs does on maintenance) */
  goaway(): void;
  /** sessions opened so far */
  sessionsOpened(): number;
}

/** An HTTP/2 TLS server on 127.0.0.1 (certificate for localhost and 127.0.0.1, made now). */
export async function startHttp2Endpoint(t: Teardown, fallback: Answer = { status: 200 }): Promise<Http2Endpoint> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
  const caFile = join(tempDir(t), 'push-test-ca.pem');
  writeFileSync(caFile, pems.cert);
  const script = new Script(fallback);
  const conns = new Connections();
  const sessions = new Set<http2.ServerHttp2Session>();
  let opened = 0;
  const server = http2.createSecureServer({ key: pems.private, cert: pems.cert });
  server.on('session', (s) => {
    opened++;
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
    conns.add(s);
  });
  server.on('stream', (stream, headers) => {
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.on('error', () => {}); // a client that cancels its stream
    stream.on('end', () => {
      script.record({ method: String(headers[':method']), path: String(headers[':path']), headers, body: Buffer.concat(parts) });
      const a = script.next();
      if (a === 'hang') return script.hang(stream);
      if (a === 'reset') return stream.session?.destroy();
      stream.respond({ ':status': a.status, ...(a.headers ?? {}) });
      stream.end(bodyOf(a));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { for (const s of sessions) s.destroy(); server.close(() => resolve()); }));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    caFile,
    received: script.received,
    answer: (...a) => script.answer(...a),
    arrivals: (n) => script.arrivals(n),
    connections: () => conns.size(),
    allClosed: () => conns.allClosed(),
    hungClosed: () => script.hungClosed(),
    goaway: () => { for (const s of sessions) { s.goaway(); s.close(); } },
    sessionsOpened: () => opened,
  };
}

/** A JWT's header and claims when its signature verifies with `key` (ES256 or RS256), else throws. */
export function verifyJwt(jwt: string, key: KeyLike, alg: 'ES256' | 'RS256'): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new Error('not a JWT');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as Record<string, unknown>;
  if (header.alg !== alg) throw new Error(`alg ${String(header.alg)}, expected ${alg}`);
  const ok = verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), (alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key) as Parameters<typeof verify>[2], Buffer.from(parts[2], 'base64url'));
  if (!ok) throw new Error('bad JWT signature');
  return { header, claims: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Record<string, unknown> };
}

/** A P-256 public key as a KeyObject from its uncompressed point (65 bytes: 04 || x || y). */
export function p256PublicKey(point: Buffer): KeyLike {
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33, 65).toString('base64url') }, format: 'jwk' });
}

/**
 * RFC 8291 §3.4 + RFC 8188: decrypts an aes128gcm Web Push body with the user agent's key pair
 * (`ua`, whose public key is the subscription's p256dh) and auth secret.
 */
export function decryptWebPush(body: Buffer, ua: ReturnType<typeof createECDH>, auth: Buffer): string {
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  const asPublic = body.subarray(21, 21 + idlen);
  const records = body.subarray(21 + idlen);
  if (idlen !== 65) throw new Error(`keyid of ${idlen} bytes, expected the sender's 65-byte public key`);
  if (records.length > rs) throw new Error('more than one record');
  const ecdhSecret = ua.computeSecret(asPublic);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), ua.getPublicKey(), asPublic]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, auth, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(records.subarray(records.length - 16));
  const padded = Buffer.concat([decipher.update(records.subarray(0, records.length - 16)), decipher.final()]);
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (padded[end] !== 2) throw new Error('no last-record delimiter');
  return padded.subarray(0, end).toString('utf8');
}

export { createECDH };
